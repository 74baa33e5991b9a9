"""Reading, validating and writing knowledge-base files (YAML, JSON Lines, CSV).

The file format is a public interface (docs/knowledge-format.md). Validation collects every problem
with its line, entry and field, so a webmaster fixes a file in one go; nothing is imported unless
the whole file is valid.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core import yaml_loader
from knowledge.entries import DEFAULT_MUNICIPALITY, Entry

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
FIELDS = {"id", "tags", "url", "review_by", "questions", "answer"}
MAX_TEXT = 10_000


@dataclass(frozen=True)
class Problem:
    line: int | None
    entry: str  # the entry id, or "#N" (1-based position) when the id is missing
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line else []
        where.append(f"entry {self.entry}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}"


class KbFileError(ValueError):
    """The file is not a valid knowledge base; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class _Raw:
    data: Any
    line: int | None
    field_lines: dict[str, int]


def _yaml_items(text: str) -> list[_Raw]:
    loader = yaml_loader.SafeLoader(text)
    try:  # parsed once: the nodes give each entry's and field's line, the same nodes its values
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise KbFileError([Problem(line, "-", None, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    finally:
        loader.dispose()
    if data is None:
        return []
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise KbFileError([Problem(1, "-", None, "the file must be a list of entries (each starting with '- id:')")])
    items = []
    for node, value in zip(root.value, data, strict=True):
        lines = {}
        if isinstance(node, yaml.MappingNode):
            lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        items.append(_Raw(value, node.start_mark.line + 1, lines))
    return items


def _jsonl_items(text: str) -> list[_Raw]:
    items, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(_Raw(json.loads(line), number, {}))
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"#{len(items) + len(problems) + 1}", None, f"not valid JSON: {exc.msg}"))
    if problems:
        raise KbFileError(problems)
    return items


def _csv_items(text: str) -> list[_Raw]:
    """CSV: columns id, tags (';'-separated), url, review_by, question_<lang> (one variant per line
    within the cell), answer_<lang>."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise KbFileError([Problem(1, "-", "id", "the header row must have an 'id' column")])
    items = []
    for row in reader:
        entry: dict[str, Any] = {"id": row.get("id", "")}
        questions: dict[str, list[str]] = {}
        answer: dict[str, str] = {}
        for col, cell in row.items():
            cell = (cell or "").strip()
            if col is None or not cell:
                continue
            if col == "tags":
                entry["tags"] = [t.strip() for t in cell.split(";") if t.strip()]
            elif col in ("url", "review_by"):
                entry[col] = cell
            elif col.startswith("question_"):
                questions[col.removeprefix("question_")] = [q.strip() for q in cell.splitlines() if q.strip()]
            elif col.startswith("answer_"):
                answer[col.removeprefix("answer_")] = cell
        if questions:
            entry["questions"] = questions
        entry["answer"] = answer
        items.append(_Raw(entry, reader.line_num, {}))
    return items


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


_Bad = Callable[[str | None, str], None]


def _validate(raw: _Raw, position: int, seen: set[str], municipality: str) -> tuple[Entry | None, list[Problem]]:
    """Check one raw entry field by field; every problem is reported, none stops the others."""
    data = raw.data
    name = f"#{position}"
    problems: list[Problem] = []

    def bad(field: str | None, message: str) -> None:
        problems.append(Problem(raw.field_lines.get(field or "", raw.line), name, field, message))

    if not isinstance(data, dict):
        bad(None, "an entry must be a mapping with at least 'id' and 'answer'")
        return None, problems
    entry_id = data.get("id")
    if isinstance(entry_id, str) and ID_RE.match(entry_id):
        name = f"'{entry_id}'"
    _check_id(entry_id, seen, bad)
    for key in data:
        if key not in FIELDS:
            bad(str(key), f"unknown field (allowed: {', '.join(sorted(FIELDS))})")
    answer = _check_answer(data.get("answer"), bad)
    questions = _check_questions(data.get("questions") or {}, bad)
    tags = _check_tags(data.get("tags") or [], bad)
    url = _check_url(data.get("url"), bad)
    review_by = _check_review_by(data.get("review_by"), bad)
    if problems:
        return None, problems
    entry = Entry(
        id=entry_id,
        answer={k: v.strip() for k, v in answer.items()},
        questions=questions,
        tags=[t.strip() for t in tags if t.strip()],
        url=url,
        review_by=review_by,
        municipality=municipality,
    )
    return entry, []


def _check_id(entry_id: object, seen: set[str], bad: _Bad) -> None:
    if isinstance(entry_id, str) and ID_RE.match(entry_id):
        if entry_id in seen:
            bad("id", "the same id appears earlier in the file")
        seen.add(entry_id)
    else:
        bad("id", "required: letters, digits, '.', '_' or '-' (at most 128), e.g. waste-collection-schedule")


def _check_answer(answer: object, bad: _Bad) -> dict:
    if not isinstance(answer, dict) or not answer:
        bad("answer", "required: a mapping from language code to text, e.g. {sv: '...'}")
        return {}
    for lang, text in answer.items():
        if not isinstance(lang, str) or not LANG_RE.match(lang):
            bad("answer", f"'{lang}' is not a language code (use ISO 639-1 like sv, en, ar)")
        elif not isinstance(text, str) or not text.strip():
            bad("answer", f"the {lang} answer is empty")
        elif len(text) > MAX_TEXT:
            bad("answer", f"the {lang} answer is longer than {MAX_TEXT} characters")
    return answer


def _check_questions(questions: object, bad: _Bad) -> dict[str, list[str]]:
    if not isinstance(questions, dict):
        bad("questions", "must be a mapping from language code to a list of questions")
        return {}
    clean_questions: dict[str, list[str]] = {}
    for lang, variants in questions.items():
        if isinstance(variants, str):
            variants = [variants]
        if not isinstance(lang, str) or not LANG_RE.match(lang):
            bad("questions", f"'{lang}' is not a language code (use ISO 639-1 like sv, en, ar)")
        elif not isinstance(variants, list) or not all(isinstance(v, str) and v.strip() for v in variants):
            bad("questions", f"the {lang} questions must be a list of non-empty texts")
        else:
            clean_questions[lang] = [v.strip() for v in variants]
    return clean_questions


def _check_tags(tags: object, bad: _Bad) -> list:
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        bad("tags", "must be a list of words, e.g. [avfall, sophämtning]")
        return []
    return tags


def _check_url(url: object, bad: _Bad) -> str | None:
    if url is not None and not (isinstance(url, str) and re.match(r"^https?://\S+$", url)):
        bad("url", "must be a web address starting with http:// or https://")
        return None
    return url


def _check_review_by(review_by: object, bad: _Bad) -> dt.date | None:
    if review_by is None:
        return None
    try:
        return _date(review_by)
    except ValueError:
        bad("review_by", f"'{review_by}' is not a date (use YYYY-MM-DD)")
        return None


def file_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "yaml"


def parse_text(text: str, fmt: str = "yaml", municipality: str = DEFAULT_MUNICIPALITY) -> list[Entry]:
    """Parse and validate a whole file; raise KbFileError listing every problem."""
    readers = {"yaml": _yaml_items, "jsonl": _jsonl_items, "csv": _csv_items}
    if fmt not in readers:
        raise KbFileError([Problem(None, "-", None, f"unknown format '{fmt}' (yaml, jsonl or csv)")])
    entries, problems, seen = [], [], set()
    for position, raw in enumerate(readers[fmt](text), start=1):
        entry, found = _validate(raw, position, seen, municipality)
        problems.extend(found)
        if entry:
            entries.append(entry)
    if problems:
        raise KbFileError(problems)
    return entries


def parse_entry(data: dict, municipality: str = DEFAULT_MUNICIPALITY) -> Entry:
    """One entry given as a mapping (API bodies, stored rows): the same validation as a file."""
    return parse_text(json.dumps(data, ensure_ascii=False, default=str), "jsonl", municipality)[0]


def parse_bytes(raw: bytes, name: str, municipality: str = DEFAULT_MUNICIPALITY) -> list[Entry]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KbFileError([Problem(line, "-", None, "the file is not UTF-8 text")]) from None
    return parse_text(text, file_format(name), municipality)


def load_path(path: Path, municipality: str = DEFAULT_MUNICIPALITY) -> list[Entry]:
    """One file, or every .yml/.yaml/.jsonl/.csv file of a folder (ids unique across them)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".yml", ".yaml", ".jsonl", ".csv"))
    else:
        files = [path]
    entries, problems, owner = [], [], {}
    for file in files:
        try:
            found = parse_bytes(file.read_bytes(), file.name, municipality)
        except KbFileError as exc:
            problems += [Problem(p.line, f"{p.entry} in {file.name}", p.field, p.message) for p in exc.problems]
            continue
        for entry in found:
            if entry.id in owner:
                problems.append(Problem(None, f"'{entry.id}' in {file.name}", "id", f"also in {owner[entry.id]}"))
            owner[entry.id] = file.name
            entries.append(entry)
    if problems:
        raise KbFileError(problems)
    return entries


def dump(entries: list[Entry], fmt: str = "yaml") -> str:
    """Write entries in the same format `parse_text` reads (round-trips)."""
    if fmt == "jsonl":
        return "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in entries)
    if fmt == "csv":
        langs_q = sorted({lang for e in entries for lang in e.questions})
        langs_a = sorted({lang for e in entries for lang in e.answer})
        header = ["id", "tags", "url", "review_by"]
        header += [f"question_{x}" for x in langs_q] + [f"answer_{x}" for x in langs_a]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        for e in entries:
            writer.writerow(
                [e.id, ";".join(e.tags), e.url or "", e.review_by.isoformat() if e.review_by else ""]
                + ["\n".join(e.questions.get(x, [])) for x in langs_q]
                + [e.answer.get(x, "") for x in langs_a]
            )
        return out.getvalue()
    return yaml.safe_dump([e.to_dict() for e in entries], allow_unicode=True, sort_keys=False, width=100)

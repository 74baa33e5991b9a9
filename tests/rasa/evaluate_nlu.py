"""Evaluates the trained Rasa model's NLU on the held-out split (tests/rasa/nlu_holdout.yml).

Run in the Rasa environment:
    .venv-rasa/bin/python tests/rasa/evaluate_nlu.py [--model PATH] [--data PATH]

Targets (exit status 1 if any is missed):
  * request_human recall >= 0.95 and precision >= 0.95;
  * greet / goodbye / thanks are never classified as ask or request_human;
  * a question (ask) is never classified as small talk or another dialogue intent (the bot would answer
    "I am a bot" or "goodbye" instead of looking it up); read as request_human it counts in precision.
`nlu_fallback` counts as `ask`, because the dialogue sends it to action_answer as well.
Prints per-language accuracy and every misclassified example.
"""

import argparse
import asyncio
import glob
import logging
import os
import sys
from collections import defaultdict

ROUTED_AS_ASK = {"nlu_fallback", "ask"}
SMALL_TALK = {"greet", "goodbye", "thanks"}
TARGET = 0.95


def latest_model() -> str:
    """The newest model in the usual output folders."""
    folders = [
        os.environ.get("RASA_MODEL_DIR", ""),
        "/tmp/rasa-models",
        os.path.join(os.environ.get("KOMMUNCHATT_DATA_DIR", "var"), "rasa-models"),
        "models",
    ]
    models = [m for folder in folders if folder for m in glob.glob(os.path.join(folder, "*.tar.gz"))]
    if not models:
        sys.exit("no trained model found; pass --model")
    return max(models, key=os.path.getmtime)


def load_examples(path: str) -> list[tuple[str, str, str]]:
    """(language, intent, text) for every example of the held-out file."""
    from rasa.shared.utils.io import read_yaml_file

    examples = []
    for block in read_yaml_file(path).get("nlu", []):
        if "intent" not in block:
            continue
        lang = str((block.get("metadata") or {}).get("language", "?"))
        for line in str(block.get("examples", "")).splitlines():
            text = line.strip()
            if text.startswith("- "):
                examples.append((lang, block["intent"], text[2:].strip()))
    return examples


async def predict(model: str, texts: list[str]) -> list[str]:
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)

    agent = Agent.load(model)
    results = []
    for text in texts:
        parsed = await agent.parse_message(text)
        name = (parsed.get("intent") or {}).get("name")
        results.append("ask" if name in ROUTED_AS_ASK else str(name))
    return results


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "nlu_holdout.yml"))
    args = parser.parse_args()
    model = args.model or latest_model()
    examples = load_examples(args.data)
    predicted = asyncio.run(predict(model, [text for _, _, text in examples]))

    per_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    true_pos = false_pos = false_neg = 0
    small_talk_errors = []
    questions_lost = []
    errors = []
    for (lang, gold, text), pred in zip(examples, predicted, strict=True):
        per_lang[lang][1] += 1
        if pred == gold:
            per_lang[lang][0] += 1
        else:
            errors.append(f"  [{lang}] {gold:>15} -> {pred:<15} {text}")
        if gold == "request_human" and pred == "request_human":
            true_pos += 1
        elif gold == "request_human":
            false_neg += 1
        elif pred == "request_human":
            false_pos += 1
        if gold in SMALL_TALK and pred in {"ask", "request_human"}:
            small_talk_errors.append(text)
        if gold == "ask" and pred not in {"ask", "request_human"}:
            questions_lost.append(text)

    print(f"model: {model}\nheld-out examples: {len(examples)}\n")
    print(f"{'language':<10}{'examples':>10}{'accuracy':>10}")
    for lang in sorted(per_lang):
        correct, total = per_lang[lang]
        print(f"{lang:<10}{total:>10}{ratio(correct, total):>10.3f}")
    correct = sum(c for c, _ in per_lang.values())
    print(f"{'all':<10}{len(examples):>10}{ratio(correct, len(examples)):>10.3f}\n")

    recall = ratio(true_pos, true_pos + false_neg)
    precision = ratio(true_pos, true_pos + false_pos)
    print(f"request_human recall    {recall:.3f} (target >= {TARGET})")
    print(f"request_human precision {precision:.3f} (target >= {TARGET})")
    print(f"greet/goodbye/thanks read as ask/request_human: {len(small_talk_errors)} (target 0)")
    print(f"questions read as another dialogue intent: {len(questions_lost)} (target 0)")
    if errors:
        print("\nmisclassified:\n" + "\n".join(errors))

    ok = recall >= TARGET and precision >= TARGET and not small_talk_errors and not questions_lost
    print("\nRESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

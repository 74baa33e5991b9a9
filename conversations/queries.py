"""Questions other packages ask about many conversations at once, answered by the package that owns the tables.

Plain functions over a `Connection` (the caller's, so its transaction and snapshot are kept), returning
rows or plain values. handoff/ (queue, assignment, live console, history), learning/ (signals for the
content owners, the traffic that suggestions and unanswered questions read) and the app's data-protection
code (kommunchatt/retention.py, privacy_api.py) call these instead of building SQL on
`conversations.tables`.

Where a question also needs another package's table (a call-back ticket's contact, an open ticket, an
open assignment), the caller passes the conversation ids it means: a list, or a SELECT of ids that its own
package builds over its own table (`ids: Ids`). The database then still answers with one statement, as
before the tables had owners, and this module never names a table it does not own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, Row, Select, and_, delete, exists, func, or_, select, update

from conversations.tables import conversations, messages

Ids = Collection[str] | Select  # conversation ids: a list, or a SELECT of one column of ids (never NULL)


# --- the queue and the agents' chats ---------------------------------------------------------------------


def queued(conn: Connection, settled_before: float) -> list[Row]:
    """Queued conversations (id, language, municipality, queued_at) queued at or before `settled_before`,
    longest waiting first: the assignment pass's candidates."""
    return conn.execute(
        select(conversations.c.id, conversations.c.language, conversations.c.municipality, conversations.c.queued_at)
        .where(conversations.c.state == "queued", conversations.c.queued_at <= settled_before)
        .order_by(conversations.c.queued_at)
    ).all()


def load_per_agent(conn: Connection) -> dict[int, int]:
    """{user id: open chats} of the agents holding chats now."""
    rows = conn.execute(
        select(conversations.c.assigned_to, func.count())
        .where(conversations.c.state == "agent")
        .group_by(conversations.c.assigned_to)
    )
    return {uid: n for uid, n in rows if uid is not None}


def holders(conn: Connection) -> set[int]:
    """The users holding at least one chat."""
    rows = conn.execute(select(conversations.c.assigned_to).where(conversations.c.state == "agent").distinct())
    return {r.assigned_to for r in rows if r.assigned_to is not None}


def held_by(conn: Connection, user_ids: Collection[int]) -> list[dict]:
    """The chats these users hold (whole rows)."""
    rows = conn.execute(
        select(conversations).where(conversations.c.state == "agent", conversations.c.assigned_to.in_(user_ids))
    )
    return [dict(r._mapping) for r in rows]


def held_among(conn: Connection, ids: Ids) -> list[Row]:
    """Of `ids`, the chats an agent holds (id, language, municipality, assigned_to), longest queued first.

    handoff's rebalancing pass passes the SELECT of conversations whose open assignment is unanswered."""
    return conn.execute(
        select(conversations.c.id, conversations.c.language, conversations.c.municipality, conversations.c.assigned_to)
        .where(conversations.c.state == "agent", conversations.c.id.in_(ids))
        .order_by(conversations.c.queued_at)
    ).all()


def handling_times(conn: Connection, since: float, limit: int) -> list[float]:
    """Seconds from assignment to close of the latest `limit` chats closed after `since`, newest first."""
    return [
        r[0]
        for r in conn.execute(
            select(conversations.c.closed_at - conversations.c.assigned_at)
            .where(
                conversations.c.closed_at > since,
                conversations.c.assigned_at.is_not(None),
                conversations.c.closed_at >= conversations.c.assigned_at,
            )
            .order_by(conversations.c.closed_at.desc())
            .limit(limit)
        )
    ]


# --- several conversations by id ----------------------------------------------------------------------


def municipality_of(conn: Connection, conversation_id: str) -> str | None:
    return conn.execute(select(conversations.c.municipality).where(conversations.c.id == conversation_id)).scalar()


def municipalities_of(conn: Connection, ids: Ids) -> dict[str, str]:
    """{conversation id: municipality} of those of `ids` that exist."""
    rows = conn.execute(select(conversations.c.id, conversations.c.municipality).where(conversations.c.id.in_(ids)))
    return {r.id: r.municipality for r in rows}


def by_ids(conn: Connection, ids: Ids, newest_first: bool = False) -> list[dict]:
    """Whole rows of `ids`, by creation time (oldest first, or newest first)."""
    order = conversations.c.created_at.desc() if newest_first else conversations.c.created_at
    rows = conn.execute(select(conversations).where(conversations.c.id.in_(ids)).order_by(order))
    return [dict(r._mapping) for r in rows]


def found(conn: Connection, ids: Ids) -> list[dict]:
    """id, municipality, created_at and state of those of `ids` that exist (in no particular order)."""
    rows = conn.execute(
        select(conversations.c.id, conversations.c.municipality, conversations.c.created_at, conversations.c.state)
        .where(conversations.c.id.in_(ids))
    )
    return [dict(r._mapping) for r in rows]


def started_in(conn: Connection, municipality: str, since: float, until: float | None = None) -> dict[str, dict]:
    """{id: whole row} of `municipality`'s conversations created at or after `since` (and before `until`, if
    given), in no particular order."""
    query = select(conversations).where(
        conversations.c.municipality == municipality, conversations.c.created_at >= since
    )
    if until:
        query = query.where(conversations.c.created_at < until)
    return {r.id: dict(r._mapping) for r in conn.execute(query)}


def low_rated(conn: Connection, max_score: int, since: float) -> list[Row]:
    """Whole rows of the conversations rated `max_score` or lower with a comment (not NULL; it may be blank),
    updated at or after `since`, in no particular order."""
    return conn.execute(
        select(conversations).where(
            conversations.c.csat_score <= max_score,
            conversations.c.csat_comment.is_not(None),
            conversations.c.updated_at >= since,
        )
    ).all()


# --- messages -----------------------------------------------------------------------------------------------


def messages_of(conn: Connection, ids: Collection[str]) -> list[Row]:
    """Every message (id, conversation_id, sender, text, data) of these conversations, notes too, in order."""
    if not ids:
        return []
    return conn.execute(
        select(messages.c.id, messages.c.conversation_id, messages.c.sender, messages.c.text, messages.c.data)
        .where(messages.c.conversation_id.in_(ids))
        .order_by(messages.c.id)
    ).all()


def last_citizen_words(conn: Connection, ids: Collection[str]) -> dict[str, str]:
    """{conversation id: the citizen's last typed message} (a button's "/payload" is not typed words)."""
    if not ids:
        return {}
    last = (
        select(messages.c.conversation_id, func.max(messages.c.id).label("mid"))
        .where(messages.c.conversation_id.in_(ids), messages.c.sender == "citizen", ~messages.c.text.startswith("/"))
        .group_by(messages.c.conversation_id)
        .subquery()
    )
    rows = conn.execute(
        select(messages.c.conversation_id, messages.c.text).join(last, and_(messages.c.id == last.c.mid))
    )
    return {r.conversation_id: r.text for r in rows}


def transcripts(conn: Connection, ids: Collection[str], chunk: int = 500) -> dict[str, list[Row]]:
    """{conversation id: its messages (whole rows), notes excluded, in order}, read `chunk` ids per statement;
    conversations without messages are left out (learning/meaning.py walks them)."""
    by_conv: dict[str, list[Row]] = {}
    ids = list(ids)
    for start in range(0, len(ids), chunk):
        rows = conn.execute(
            select(messages)
            .where(messages.c.conversation_id.in_(ids[start : start + chunk]), messages.c.sender != "note")
            .order_by(messages.c.id)
        )
        for row in rows:
            by_conv.setdefault(row.conversation_id, []).append(row)
    return by_conv


def citizen_question_before(conn: Connection, conversation_id: str, message_id: int) -> Row | None:
    """(id, text) of the citizen's last typed message (not a button's "/payload") before `message_id`."""
    return conn.execute(
        select(messages.c.id, messages.c.text)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.id < message_id,
            messages.c.sender == "citizen",
            ~messages.c.text.startswith("/"),
        )
        .order_by(messages.c.id.desc())
        .limit(1)
    ).first()


def bot_message_data(conn: Connection, conversation_id: str) -> list[dict | None]:
    """The `data` of the bot's messages in a conversation, newest first."""
    return list(
        conn.execute(
            select(messages.c.data)
            .where(messages.c.conversation_id == conversation_id, messages.c.sender == "bot")
            .order_by(messages.c.id.desc())
        ).scalars()
    )


def feedback_and_bot_messages(conn: Connection, after_id: int, since: float, citizen_text: str) -> list[Row]:
    """Messages with an id above `after_id`, created at or after `since`, that may call for a content owner
    (learning/signals.py): system "feedback" messages, every bot message, and the citizen's messages that are
    exactly `citizen_text` (a button's payload). Columns: id, conversation_id, sender, text, data,
    created_at, and the conversation's municipality, topic and handoff_reason. By id."""
    return conn.execute(
        select(
            messages.c.id,
            messages.c.conversation_id,
            messages.c.sender,
            messages.c.text,
            messages.c.data,
            messages.c.created_at,
            conversations.c.municipality,
            conversations.c.topic,
            conversations.c.handoff_reason,
        )
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .where(
            messages.c.id > after_id,
            messages.c.created_at >= since,
            or_(
                and_(messages.c.sender == "system", messages.c.text == "feedback"),
                messages.c.sender == "bot",
                and_(messages.c.sender == "citizen", messages.c.text == citizen_text),
            ),
        )
        .order_by(messages.c.id)
    ).all()


def message_ids(conversation_ids: Collection[str]) -> Select:
    """A SELECT of the ids of these conversations' messages: for deleting rows that point at messages."""
    return select(messages.c.id).where(messages.c.conversation_id.in_(conversation_ids))


# --- staff's search over past conversations ---------------------------------------------------------------


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character backslash) matching `text` anywhere, its % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Search:
    """What staff search past conversations by; an empty field does not filter. Only conversations in which
    the citizen wrote are found."""

    municipalities: frozenset[str] | None = None  # the searcher's scope; None: all
    municipality: str = ""
    state: str = ""
    language: str = ""
    created_from: float | None = None  # created_at >= this
    created_before: float | None = None  # created_at < this
    words: str = ""  # in any message (case-insensitive), or the start of the session id
    among: Select | None = None  # a SELECT of ids the caller's package found (a call-back contact's chats)

    def where(self) -> list:
        c = conversations.c
        where = [exists().where(and_(messages.c.conversation_id == c.id, messages.c.sender == "citizen"))]
        if self.municipalities is not None:
            where.append(c.municipality.in_(self.municipalities))
        if self.municipality:
            where.append(c.municipality == self.municipality)
        if self.state:
            where.append(c.state == self.state)
        if self.language:
            where.append(c.language == self.language)
        if self.created_from is not None:
            where.append(c.created_at >= self.created_from)
        if self.created_before is not None:
            where.append(c.created_at < self.created_before)
        if self.words:
            said = exists().where(
                and_(messages.c.conversation_id == c.id, messages.c.text.ilike(like_pattern(self.words), escape="\\"))
            )
            where.append(or_(said, c.id.startswith(self.words.lower(), autoescape=True)))
        if self.among is not None:
            where.append(c.id.in_(self.among))
        return where


def search(conn: Connection, search: Search, limit: int, offset: int) -> tuple[int, list[dict]]:
    """(how many match, the page's whole rows), newest first."""
    where = search.where()
    total = conn.execute(select(func.count()).select_from(conversations).where(*where)).scalar()
    rows = conn.execute(
        select(conversations)
        .where(*where)
        .order_by(conversations.c.created_at.desc(), conversations.c.id)
        .limit(limit)
        .offset(offset)
    )
    return total, [dict(r._mapping) for r in rows]


# --- retention and erasure (kommunchatt/retention.py) -------------------------------------------------------


def ended(
    conn: Connection,
    municipality: str,
    cutoff: float,
    idle_seconds: float,
    unless: Select | None = None,
    with_transcript: bool = False,
) -> list[str]:
    """Ids of `municipality`'s conversations that ended before `cutoff`: closed before it, or left with the
    bot `idle_seconds` before it. `unless`: a SELECT of ids that have not ended whatever their state (the
    chats with an open call-back ticket; it must yield no NULL). `with_transcript`: only those that still
    have messages."""
    c = conversations.c
    where = [
        c.municipality == municipality,
        or_(
            and_(c.state == "closed", c.updated_at < cutoff),
            and_(c.state == "bot", c.updated_at < cutoff - idle_seconds),
        ),
    ]
    if unless is not None:
        where.append(~c.id.in_(unless))
    if with_transcript:
        where.append(exists().where(messages.c.conversation_id == c.id))
    return [r.id for r in conn.execute(select(c.id).where(*where))]


def clear_comments(conn: Connection, ids: Collection[str]) -> None:
    """Drop the citizen's free-text feedback of these conversations (the score stays for reports)."""
    conn.execute(update(conversations).where(conversations.c.id.in_(ids)).values(csat_comment=None))


def delete_rows(conn: Connection, ids: Collection[str]) -> int:
    """Delete these conversations' own rows (their messages and other dependents must be gone already)."""
    return conn.execute(delete(conversations).where(conversations.c.id.in_(ids))).rowcount

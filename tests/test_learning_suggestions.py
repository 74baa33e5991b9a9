"""Suggestions from real traffic (issue 19, learning/suggestions.py) through the real app in this process.

The conversations are made the way the live system makes them: the citizen writes through the chat API
(so the service masks and stores the message), the dialogue's replies are the outputs the Rasa actions
give (answer / clarify / no-match texts with buttons, then the `custom` data; a scripted stand-in for the
Rasa process), "did this help?" is recorded through the internal feedback endpoint as the action server
does, and agents claim and reply through the handoff API. SQLite, the real knowledge service and embedder.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from knowledge.entries import Entry
from knowledge.kbfile import load_path
from knowledge.tables import kb_audit
from tests.conftest import ROOT
from tests.inprocess import FakeRasa, add_municipality, running_app, staff

SEED_IDS = {"home-care-apply", "home-care-services", "waste-collection-schedule", "bulky-waste"}
INTERNAL = {"x-internal-token": "in-process"}
HELPED = '/affirm{"feedback":"yes"}'
NOT_HELPED = '/deny{"feedback":"no"}'


class ScriptedRasa(FakeRasa):
    """Answers each message with the next scripted outputs; with none left, as FakeRasa (a person asked for)."""

    def __init__(self, components):
        super().__init__(components)
        self.script: list[list[dict]] = []

    async def send(self, session_id: str, text: str, metadata: dict) -> list[dict]:
        if self.script:
            self.sent.append((session_id, text))
            return self.script.pop(0)
        return await super().send(session_id, text, metadata)


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("learning"), model_path) as (client, c):
        c.rasa = c.chat.rasa = ScriptedRasa(c)
        add_municipality(c, "norrvik")
        seed = [e for name in ("care.yml", "waste.yml") for e in load_path(ROOT / "data" / "knowledge" / name)]
        c.knowledge.import_entries("default", [e for e in seed if e.id in SEED_IDS])
        yield client, c


@pytest.fixture(scope="module")
def webmaster(app):
    client, c = app
    return staff(client, c, "wanda", role="webmaster")


def _buttons(*payloads: str) -> list[dict]:
    return [{"title": p, "payload": p} for p in payloads]


def answer_outputs(entry_id: str, decision: str, text: str = "Svaret …") -> list[dict]:
    """What actions/common.py send_answer gives Rasa to send: the answer with thumbs, then its data."""
    return [
        {"text": text, "buttons": _buttons(HELPED, NOT_HELPED)},
        {"custom": {"kind": "answer", "entry_id": entry_id, "decision": decision, "score": 0.7,
                    "answer_language": "sv", "language": "sv"}},
    ]


def clarify_outputs(entry_ids: list[str]) -> list[dict]:
    buttons = [{"title": i, "payload": "/choose_entry" + json.dumps({"entry_id": i}, separators=(",", ":"))}
               for i in entry_ids]
    return [
        {"text": "Menade du något av detta?", "buttons": [*buttons, {"title": "Inget av dessa",
                                                                      "payload": "/none_of_these"}]},
        {"custom": {"kind": "clarify", "decision": "clarify", "entry_ids": entry_ids}},
    ]


NO_MATCH = [
    {"text": "Det vet jag tyvärr inte.", "buttons": _buttons("/request_human")},
    {"custom": {"kind": "decision", "decision": "no_match", "confidence": 0.2, "topics": []}},
]


class Citizen:
    def __init__(self, app, language: str = "sv", municipality: str = "default"):
        self.client, self.c = app
        body = {"language": language, "municipality": municipality}
        self.sid = self.client.post("/api/v1/chat/sessions", json=body).json()["session_id"]

    def says(self, text: str, *replies: list[dict]) -> None:
        self.c.rasa.script.extend(replies)
        response = self.client.post(f"/api/v1/chat/sessions/{self.sid}/messages", json={"text": text})
        assert response.status_code == 200, response.text

    def picks(self, question: str, offered: list[str], chosen: str) -> None:
        self.says(question, clarify_outputs(offered))
        self.says("/choose_entry" + json.dumps({"entry_id": chosen}, separators=(",", ":")),
                  answer_outputs(chosen, "clarify_choice"))

    def helped(self, question: str, entry_id: str, helpful: bool = True) -> None:
        self.says(question, answer_outputs(entry_id, "answer"))
        self.says(HELPED if helpful else NOT_HELPED, [{"text": "Tack!" if helpful else "Förlåt."}])
        recorded = self.client.post(f"/api/v1/internal/sessions/{self.sid}/feedback", headers=INTERNAL,
                                    json={"entry_id": entry_id, "helpful": helpful})
        assert recorded.status_code == 200, recorded.text

    def handed_to(self, question: str, agent: dict, reply: str) -> None:
        self.says(question, NO_MATCH)
        self.says("/request_human")  # FakeRasa queues it, as the handoff action does
        self.client.post(f"/api/v1/handoff/conversations/{self.sid}/claim", headers=agent).raise_for_status()
        for text in ("Hej, jag heter Agnes.", reply):
            self.client.post(f"/api/v1/handoff/conversations/{self.sid}/messages", json={"text": text},
                             headers=agent).raise_for_status()
        self.client.post(f"/api/v1/handoff/conversations/{self.sid}/close", json={"outcome": "resolved"},
                         headers=agent).raise_for_status()


def listed(client, headers, **params) -> list[dict]:
    response = client.get("/api/v1/admin/suggestions", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["suggestions"]


def find(items: list[dict], **match) -> list[dict]:
    return [s for s in items if all(s.get(k) == v for k, v in match.items())]


def test_clarify_choices_and_helpful_answers_become_grouped_variants(app, webmaster):
    client, c = app
    Citizen(app).picks("Hur gör jag för att få hemtjänst till min mamma?", ["home-care-apply", "home-care-services"],
                       "home-care-apply")
    Citizen(app).picks("Hur gör man för att få hemtjänst för min mamma", ["home-care-services", "home-care-apply"],
                       "home-care-apply")
    Citizen(app).helped("När kommer sopbilen och tömmer kärlet hos oss?", "waste-collection-schedule")
    Citizen(app).helped("Varför luktar det illa från avloppet?", "waste-collection-schedule", helpful=False)
    known = c.knowledge.store.get("default", "waste-collection-schedule").questions["sv"][0]
    Citizen(app).helped(known.upper(), "waste-collection-schedule")  # already a question of the entry
    Citizen(app, "en").picks("How do I get home help for my elderly mother?", ["home-care-apply", "parking-permit"],
                             "home-care-apply")

    items = listed(client, webmaster)
    home = find(items, kind="variant", entry_id="home-care-apply", language="sv")
    assert len(home) == 1, items  # the two wordings mean the same: one proposal, counted twice
    assert home[0]["count"] == 2 and home[0]["sources"] == {"clarify": 2}
    assert home[0]["question"] in {"Hur gör jag för att få hemtjänst till min mamma?",
                                   "Hur gör man för att få hemtjänst för min mamma"}
    assert home[0]["entry_question"] and len(home[0]["evidence"]) == 2
    english = find(items, kind="variant", entry_id="home-care-apply", language="en")
    assert [s["question"] for s in english] == ["How do I get home help for my elderly mother?"]
    waste = find(items, entry_id="waste-collection-schedule")
    assert [(s["question"], s["sources"]) for s in waste] == [
        ("När kommer sopbilen och tömmer kärlet hos oss?", {"feedback": 1})
    ]
    assert not any("avloppet" in s["question"] for s in items)  # "did not help" is no evidence of a wording
    # Proposed is not applied: the knowledge base is as it was.
    entry = c.knowledge.store.get("default", "home-care-apply")
    assert home[0]["question"] not in entry.questions.get("sv", [])
    assert "How do I get home help for my elderly mother?" not in entry.questions.get("en", [])
    # Listing again mines again: the same proposals keep their ids.
    again = listed(client, webmaster)
    assert {s["id"] for s in again} == {s["id"] for s in items}


def test_accepting_a_variant_adds_the_ticked_wordings_of_its_evidence_and_no_others(app, webmaster):
    client, c = app
    home = find(listed(client, webmaster), kind="variant", entry_id="home-care-apply", language="sv")[0]
    other = next(e["text"] for e in home["evidence"] if e["text"] != home["question"])
    url = f"/api/v1/admin/suggestions/{home['id']}/accept"
    refused = client.post(url, json={"wordings": ["Något som ingen medborgare skrev"]}, headers=webmaster)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "wordings"
    assert home["question"] not in c.knowledge.store.get("default", "home-care-apply").questions["sv"]
    accepted = client.post(url, json={"wordings": [other]}, headers=webmaster)
    assert accepted.status_code == 200, accepted.text
    questions = c.knowledge.store.get("default", "home-care-apply").questions["sv"]
    assert home["question"] in questions and other in questions
    assert client.post(url, headers=webmaster).status_code == 409


def test_an_agents_answer_becomes_a_new_entry_with_masked_evidence_and_accepting_answers_it(app, webmaster):
    client, c = app
    agent = staff(client, c, "agnes", role="agent")
    reply = "Ja, du får ha upp till fem höns utan tupp på en villatomt. Anmäl dem till miljöförvaltningen först."
    Citizen(app).handed_to("Får jag ha höns på tomten? Ring mig på 070-123 45 67", agent, reply)
    Citizen(app).handed_to("Får man hålla höns på villatomten? Mitt personnummer är 811218-9876", agent, reply)
    Citizen(app).handed_to("Får jag ha höns på min tomt, svara till anna.svensson@example.com", agent, reply)

    items = listed(client, webmaster)
    hens = find(items, kind="entry")
    assert len(hens) == 1, items
    hens = hens[0]
    assert hens["count"] == 3 and hens["sources"] == {"agent": 3} and hens["entry_id"] is None
    assert hens["answer"] == reply
    shown = json.dumps(hens, ensure_ascii=False)
    for personal in ("070-123 45 67", "811218-9876", "anna.svensson@example.com"):
        assert personal not in shown
    assert "[telefonnummer]" in shown and "[personnummer]" in shown and "[e-post]" in shown

    asked = "Får man ha höns på villatomten?"
    before = client.post("/api/v1/answer", json={"text": asked}).json()
    assert not any("hons" in a["id"] for a in before["answers"])  # no such entry until it is accepted
    edited = {"question": asked, "answer": reply}
    accepted = client.post(f"/api/v1/admin/suggestions/{hens['id']}/accept", json=edited, headers=webmaster)
    assert accepted.status_code == 200, accepted.text
    created = accepted.json()
    assert created["status"] == "accepted" and created["decided_by"] == "wanda" and created["entry_id"]
    after = client.post("/api/v1/answer", json={"text": asked}).json()
    assert after["decision"] == "answer" and after["answers"][0]["id"] == created["entry_id"]
    with c.engine.connect() as conn:
        audit = conn.execute(select(kb_audit).where(kb_audit.c.entry_id == created["entry_id"])).all()
    assert [(a.action, a.actor) for a in audit] == [("create", "wanda")]
    assert not find(listed(client, webmaster), kind="entry")  # accepted: not proposed again
    again = client.post(f"/api/v1/admin/suggestions/{hens['id']}/accept", headers=webmaster)
    assert again.status_code == 409 and isinstance(again.json()["detail"], str)


def test_an_agent_who_sends_an_entrys_answer_proposes_a_variant_and_accepting_it_is_audited(app, webmaster):
    client, c = app
    agent = staff(client, c, "albin", role="agent")
    waste = c.knowledge.store.get("default", "waste-collection-schedule")
    Citizen(app).handed_to("Vilken veckodag hämtar ni hushållssoporna i Ekby?", agent, waste.answer["sv"])
    variant = find(listed(client, webmaster), kind="variant", entry_id="waste-collection-schedule",
                   question="Vilken veckodag hämtar ni hushållssoporna i Ekby?")
    assert len(variant) == 1 and variant[0]["sources"] == {"agent": 1}

    accepted = client.post(f"/api/v1/admin/suggestions/{variant[0]['id']}/accept", headers=webmaster)
    assert accepted.status_code == 200, accepted.text
    entry = c.knowledge.store.get("default", "waste-collection-schedule")
    assert "Vilken veckodag hämtar ni hushållssoporna i Ekby?" in entry.questions["sv"]
    result = client.post("/api/v1/answer", json={"text": "Vilken veckodag hämtar ni hushållssoporna i Ekby?"}).json()
    assert result["decision"] == "answer" and result["answers"][0]["id"] == "waste-collection-schedule"
    with c.engine.connect() as conn:
        last = conn.execute(select(kb_audit).order_by(kb_audit.c.id.desc())).first()
    assert (last.entry_id, last.action, last.actor) == ("waste-collection-schedule", "update", "wanda")


def test_a_dismissed_suggestion_does_not_come_back(app, webmaster):
    client, c = app
    Citizen(app).picks("Kan jag få hjälp med städning hemma?", ["home-care-services", "home-care-apply"],
                       "home-care-services")
    proposal = find(listed(client, webmaster), entry_id="home-care-services")
    assert len(proposal) == 1
    dismissed = client.post(f"/api/v1/admin/suggestions/{proposal[0]['id']}/dismiss", headers=webmaster)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    Citizen(app).picks("Kan jag få hjälp med städning hemma?", ["home-care-services"], "home-care-services")
    assert not find(listed(client, webmaster), entry_id="home-care-services")  # re-mined, more evidence: gone
    assert all(e["conversation_id"] for e in proposal[0]["evidence"])
    dismissed = listed(client, webmaster, status="dismissed")
    assert [s["id"] for s in dismissed] == [proposal[0]["id"]]
    assert dismissed[0]["evidence"] and not any(e["conversation_id"] for e in dismissed[0]["evidence"])
    assert "Kan jag få hjälp med städning hemma?" not in c.knowledge.store.get(
        "default", "home-care-services").questions["sv"]


def test_other_municipalities_suggestions_are_out_of_reach(app, webmaster):
    client, c = app
    Citizen(app, municipality="norrvik").helped("Hur ansöker jag om bygglov för ett staket?", "staket-bygglov")
    c.knowledge.upsert(Entry(id="staket-bygglov", answer={"sv": "Ett staket högre än 1,1 m kräver bygglov."},
                             questions={"sv": ["Behöver jag bygglov för staket?"]}, municipality="norrvik"))
    norrvik_webmaster = staff(client, c, "nils", role="webmaster", municipalities=("norrvik",))
    theirs = listed(client, norrvik_webmaster, municipality="norrvik")
    assert [s["question"] for s in theirs] == ["Hur ansöker jag om bygglov för ett staket?"]
    assert client.get("/api/v1/admin/suggestions", params={"municipality": "norrvik"},
                      headers=webmaster).status_code == 403
    for action in ("accept", "dismiss"):
        response = client.post(f"/api/v1/admin/suggestions/{theirs[0]['id']}/{action}", headers=webmaster)
        assert response.status_code == 404 and isinstance(response.json()["detail"], str)
    for unknown in (999999, 2**63, -1):
        assert client.post(f"/api/v1/admin/suggestions/{unknown}/dismiss", headers=webmaster).status_code == 404
    agent = staff(client, c, "arvid", role="agent")
    assert client.get("/api/v1/admin/suggestions", headers=agent).status_code == 403


# ----------------------------------------------------------------------------- storage, on both databases


def _stored(engine, turns: list[tuple[str, str, dict | None]], municipality: str = "default") -> str:
    """A conversation written as the chat service stores it: each Rasa output is one bot message whose data
    holds its buttons and custom payload (conversations.service.store_bot_outputs)."""
    from conversations.store import ConversationStore

    store = ConversationStore(engine)
    cid = store.create(municipality, "sv")["id"]
    for sender, text, data in turns:
        store.add_message(cid, sender, text, data)
    return cid


def _bot(outputs: list[dict]) -> list[tuple[str, str, dict]]:
    return [("bot", o.get("text") or "", {k: o[k] for k in ("buttons", "custom") if o.get(k)}) for o in outputs]


def test_mining_accepting_and_dismissing_on_sqlite_and_postgresql(engine, model_path, tmp_path):
    import threading

    from knowledge.service import KnowledgeService
    from knowledge.store import KnowledgeStore
    from learning import suggestions

    knowledge = KnowledgeService(KnowledgeStore(engine), model_path, tmp_path / "index")
    try:
        seed = [e for e in load_path(ROOT / "data" / "knowledge" / "care.yml") if e.id in SEED_IDS]
        knowledge.import_entries("default", seed)
        asked = "Hur ordnar jag hemtjänst åt min mamma?"
        _stored(engine, [("citizen", asked, None), *_bot(clarify_outputs(["home-care-apply", "home-care-services"])),
                         ("citizen", '/choose_entry{"entry_id":"home-care-apply"}', None),
                         *_bot(answer_outputs("home-care-apply", "clarify_choice"))])
        handed = [("citizen", "Får jag ha en kanin på balkongen? Nå mig på 070-123 45 67", None), *_bot(NO_MATCH),
                  ("citizen", "/request_human", None),
                  ("bot", "Du är nummer 1 i kön.", {"custom": {"kind": "handoff", "state": "queued"}}),
                  ("agent", "Ja, kaniner får man ha på balkongen om de inte stör grannarna.", {"author": "Agnes"})]
        _stored(engine, handed)

        threads = [threading.Thread(target=suggestions.refresh, args=(knowledge, engine, "default")) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found = suggestions.listing(engine, "default")
        assert sorted((s["kind"], s["entry_id"]) for s in found) == [("entry", ""), ("variant", "home-care-apply")]
        new = next(s for s in found if s["kind"] == "entry")
        assert "070-123 45 67" not in json.dumps(new, ensure_ascii=False) and "[telefonnummer]" in new["question"]
        assert asked not in knowledge.store.get("default", "home-care-apply").questions["sv"]

        variant = next(s for s in found if s["kind"] == "variant")
        suggestions.accept(knowledge, engine, "default", variant["id"], "wanda")
        assert asked in knowledge.store.get("default", "home-care-apply").questions["sv"]
        suggestions.dismiss(engine, "default", new["id"], "wanda")
        _stored(engine, handed)  # the same question handed over again next week
        assert suggestions.refresh(knowledge, engine, "default") == []
        decided = {s["status"] for s in suggestions.listing(engine, "default", None)}
        assert decided == {"accepted", "dismissed"}
    finally:
        knowledge.close()


# ----------------------------------------------------------------------------- topics after no match, handbacks


def no_match_outputs(topics: list[str]) -> list[dict]:
    """What ActionAnswer._no_match gives Rasa: the apology with the top topics as /choose_entry buttons and a
    person's button, then its data with the topics' ids."""
    buttons = [{"title": i, "payload": "/choose_entry" + json.dumps({"entry_id": i}, separators=(",", ":"))}
               for i in topics]
    return [
        {"text": "Det vet jag tyvärr inte. Populära ämnen:", "buttons": [*buttons, *_buttons("/request_human")]},
        {"custom": {"kind": "decision", "decision": "no_match", "confidence": 0.2, "topics": topics}},
    ]


def _choice(entry_id: str) -> str:
    return "/choose_entry" + json.dumps({"entry_id": entry_id}, separators=(",", ":"))


def test_a_topic_picked_after_no_match_and_help_after_a_handback_are_evidence(app, webmaster):
    client, c = app
    agent = staff(client, c, "agda", role="agent")
    picked = Citizen(app)
    asked = "Vem kan hjälpa min pappa med städning och inköp varje vecka?"
    picked.says(asked, no_match_outputs(["home-care-services", "waste-collection-schedule"]))
    picked.says(_choice("home-care-services"), answer_outputs("home-care-services", "clarify_choice"))
    regretted = Citizen(app)  # picked a topic, then "no, that did not help": a guess, no evidence
    regretted.says("Var gör jag av en trasig soffa?", no_match_outputs(["waste-collection-schedule", "bulky-waste"]))
    regretted.says(_choice("waste-collection-schedule"), answer_outputs("waste-collection-schedule", "clarify_choice"))
    regretted.says(NOT_HELPED, [{"text": "Förlåt."}])
    client.post(f"/api/v1/internal/sessions/{regretted.sid}/feedback", headers=INTERNAL,
                json={"entry_id": "waste-collection-schedule", "helpful": False}).raise_for_status()

    handed = Citizen(app)
    handed.says("Får jag elda trädgårdsavfall på tomten i november?", NO_MATCH)
    handed.says("/request_human")
    reply = "Eldning av torrt trädgårdsavfall är tillåten i november om det inte är eldningsförbud. Tänk på grannarna."
    client.post(f"/api/v1/handoff/conversations/{handed.sid}/claim", headers=agent).raise_for_status()
    client.post(f"/api/v1/handoff/conversations/{handed.sid}/messages", json={"text": reply},
                headers=agent).raise_for_status()
    back = client.post(f"/api/v1/handoff/conversations/{handed.sid}/handback", headers=agent)
    assert back.status_code == 200 and back.json()["state"] == "bot", back.text
    later = "Hur ofta töms kärlet för matavfall hos oss på landet?"
    handed.helped(later, "waste-collection-schedule")  # the bot answers again; the citizen says it helped

    items = listed(client, webmaster)
    topic = find(items, kind="variant", entry_id="home-care-services", question=asked)
    assert len(topic) == 1 and topic[0]["sources"] == {"topic": 1}, items
    assert not any("soffa" in s["question"] for s in items)
    helped = [e for s in find(items, kind="variant", entry_id="waste-collection-schedule") for e in s["evidence"]
              if e["text"] == later]  # grouped with an earlier citizen's wording of the same
    assert [e["source"] for e in helped] == ["feedback"], items
    fire = [s for s in find(items, kind="entry") if "elda" in s["question"]]
    assert len(fire) == 1 and fire[0]["answer"] == reply and fire[0]["sources"] == {"agent": 1}
    assert not any(later in e["text"] for s in fire for e in s["evidence"])  # asked of the bot, not the agent


def test_topic_choices_and_handbacks_in_stored_conversations_on_sqlite_and_postgresql(engine, model_path, tmp_path):
    from knowledge.service import KnowledgeService
    from knowledge.store import KnowledgeStore
    from learning import suggestions

    knowledge = KnowledgeService(KnowledgeStore(engine), model_path, tmp_path / "index")
    try:
        seed = [e for name in ("care.yml", "waste.yml") for e in load_path(ROOT / "data" / "knowledge" / name)]
        knowledge.import_entries("default", [e for e in seed if e.id in SEED_IDS])
        asked = "Vem kan hjälpa min pappa med städning och inköp varje vecka?"
        _stored(engine, [("citizen", asked, None), *_bot(no_match_outputs(["home-care-services", "bulky-waste"])),
                         ("citizen", _choice("home-care-services"), None),
                         *_bot(answer_outputs("home-care-services", "clarify_choice"))])
        _stored(engine, [("citizen", "Kan jag få en ny nyckel till tvättstugan?", None),  # a choice nobody offered
                         *_bot(no_match_outputs(["bulky-waste"])),
                         ("citizen", _choice("home-care-apply"), None),
                         *_bot(answer_outputs("home-care-apply", "clarify_choice"))])
        rabbit = "Ja, kaniner får man ha på balkongen om de inte stör grannarna."
        moped = "Du måste vara 15 år och ha AM-körkort för att köra EU-moped."
        later = "Hur ofta töms kärlet för matavfall hos oss på landet?"
        _stored(engine, [
            ("citizen", "Får jag ha en kanin på balkongen?", None), *_bot(NO_MATCH),
            ("citizen", "/request_human", None),
            ("bot", "Du är nummer 1 i kön.", {"custom": {"kind": "handoff", "state": "queued"}}),
            ("agent", rabbit, {"author": "Agnes"}),
            ("system", "Chattroboten svarar igen.", {"custom": {"kind": "handback"}}),
            ("bot", "Välkommen tillbaka till chattroboten.", None),
            ("citizen", later, None), *_bot(answer_outputs("waste-collection-schedule", "answer")),
            ("citizen", HELPED, None), ("bot", "Tack!", None),
            ("system", "feedback", {"custom": {"kind": "feedback", "entry_id": "waste-collection-schedule",
                                               "helpful": True}}),
            ("citizen", "Hur gammal måste man vara för att köra moped?", None), *_bot(NO_MATCH),
            ("citizen", "/request_human", None),
            ("bot", "Du är nummer 1 i kön.", {"custom": {"kind": "handoff", "state": "queued"}}),
            ("agent", moped, {"author": "Agnes"}),
        ])

        found = suggestions.mine(knowledge, engine, "default")
        by_question = {s["question"]: s for s in found}
        assert by_question[asked]["kind"] == "variant" and by_question[asked]["entry_id"] == "home-care-services"
        assert by_question[asked]["sources"] == {"topic": 1}
        assert not find(found, entry_id="home-care-apply")
        assert by_question[later]["entry_id"] == "waste-collection-schedule"
        assert by_question[later]["sources"] == {"feedback": 1}
        new = sorted((s["question"], s["answer"], s["count"]) for s in find(found, kind="entry"))
        assert new == [
            ("Får jag ha en kanin på balkongen?", rabbit, 1),  # the first agent's part, asked once
            ("Hur gammal måste man vara för att köra moped?", moped, 1),  # the second: only what came after
        ]
    finally:
        knowledge.close()

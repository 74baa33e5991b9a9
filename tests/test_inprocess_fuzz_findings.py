"""Fast layer: what schemathesis (tests/test_api_fuzz.py) found, each case checked in this process.

The workshop export's download name (Content-Disposition) and its municipality: schemathesis found
`GET /api/v1/admin/export?municipality=%1F` as a global admin (who passes the scope check with any id)
answered with a closed connection: the id went into the header's file name, and a header cannot carry
a control character. An unknown municipality is a 404 before any header is built, and the name in the
header never carries control characters.

The answer API's forced language: `{"language": "G ."}` (or non-ASCII) reached the general dictionary
lookup and answered 500; a language that is not a language code is a 422."""

from __future__ import annotations

import pytest

from knowledge.admin_api import attachment
from tests.inprocess import add_municipality, running_app, staff


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-export"), model_path) as running:
        yield running


@pytest.fixture(scope="module")
def admin(app) -> dict:
    """A global admin: every municipality id passes the scope check."""
    client, c = app
    return staff(client, c, "global-export", role="admin", municipalities=("*",))


@pytest.mark.parametrize("municipality", ["\x1f", "\x00", "nowhere", "malmö\r\nx-injected: 1"])
def test_unknown_municipality_is_404_before_any_header(app, admin, municipality):
    client, _ = app
    response = client.get("/api/v1/admin/export", params={"municipality": municipality}, headers=admin)
    assert response.status_code == 404, response.text
    assert "content-disposition" not in response.headers
    assert "x-injected" not in response.headers


def test_known_municipality_downloads_with_a_clean_name(app, admin):
    client, c = app
    add_municipality(c, "åre")
    response = client.get("/api/v1/admin/export", params={"municipality": "åre", "format": "csv"}, headers=admin)
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="kunskapsbank-_re-')
    assert "filename*=UTF-8''kunskapsbank-%C3%A5re-" in disposition


@pytest.mark.parametrize("name", ["a\x1fb.csv", "a\x00b\r\n.csv", 'a"b\\c\x7f.csv', "\x1f", "Örebro\u2028.yml"])
def test_attachment_never_carries_control_characters(name):
    disposition = attachment(name)
    assert disposition.isprintable() and disposition.isascii()
    fallback = disposition.split('filename="', 1)[1].split('";', 1)[0]
    assert '"' not in fallback and "\\" not in fallback and fallback


@pytest.mark.parametrize("language", ["G .", "la\u00e9", "", "sv sv", "x" * 40])
def test_answer_refuses_a_language_that_is_no_language_code(app, language):
    client, _ = app
    response = client.post("/api/v1/answer", json={"text": "q>o on", "language": language})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].endswith("language")


def test_answer_takes_a_language_code(app):
    client, _ = app
    response = client.post("/api/v1/answer", json={"text": "asdkjh qwe zzxq", "language": "en"})
    assert response.status_code == 200, response.text

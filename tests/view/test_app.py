"""The JSON API through Starlette's TestClient and through a real uvicorn server on a free
127.0.0.1 port: answers, 4xx JSON errors for bad ids and parameters, path traversal attempts,
the token off loopback, the Host check and JSON-only POSTs."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from pipeline.view.app import create_app
from tests.helpers import make_classification_dataset, make_detection_dataset
from tests.view.conftest import packed_dataset, serving, session_for, write_issues


@pytest.fixture
def det(tmp_path: Path):
    return session_for(make_detection_dataset(tmp_path / "det", n=6), tmp_path)


@pytest.fixture
def client(det) -> TestClient:
    return TestClient(create_app(det))


def test_the_page_and_its_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, media in (("app.js", "text/javascript"), ("api.js", "text/javascript"), ("overlay.js", "text/javascript"),
                        ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
    assert "http" not in client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")  # local only


def test_samples_pages_filters_and_stats(client: TestClient) -> None:
    body = client.get("/api/samples", params={"limit": 4}).json()
    assert body["total"] == 6 and [s["id"] for s in body["samples"]] == ["img-000", "img-001", "img-002", "img-003"]
    assert body["samples"][0]["objects"][0]["bbox"] and body["samples"][0]["row"] == 0
    assert [s["id"] for s in client.get("/api/samples?offset=4").json()["samples"]] == ["img-004", "img-005"]
    assert client.get("/api/samples?split=val").json()["total"] == 2
    assert client.get("/api/samples?q=IMG-00").json()["total"] == 6
    stats = client.get("/api/stats?split=train").json()
    assert stats["total"] == 4 and stats["splits"] == {"train": 4} and set(stats["classes"]) == {"red", "green"}
    one = client.get("/api/samples/img-002").json()
    assert one["id"] == "img-002" and one["findings"] == [] and one["parents"] == []
    info = client.get("/api/info").json()
    assert info["task"] == "detection" and info["classes"] == ["red", "green"] and info["lineage"]


def test_images_and_thumbnails(client: TestClient, tmp_path: Path) -> None:
    for route in ("image", "thumb"):
        response = client.get(f"/api/{route}/img-001")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (64, 48)
    packed = session_for(packed_dataset(tmp_path / "packed"), tmp_path)
    response = TestClient(create_app(packed)).get("/api/image/p-1")
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (28, 28)


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/samples?split=bogus", 400, "split: expected train, val, test or none"),
    ("/api/samples?label=blue", 400, "label: not a class of this dataset"),
    ("/api/samples?finding=nonsense", 400, "finding: expected 'any' or a check code"),
    ("/api/samples?offset=-1", 400, "offset: expected 0 to"),
    ("/api/samples?limit=100000", 400, "limit: expected 1 to 500"),
    ("/api/samples?limit=ten", 400, "limit: expected an integer"),
    ("/api/samples?colour=red", 400, "unknown parameter 'colour'"),
    ("/api/samples?issues=1", 400, "no label issues loaded"),
    ("/api/samples?disagree=1", 400, "no predictions loaded"),
    ("/api/samples?augmented=maybe", 400, "augmented: expected 1 or 0"),
    ("/api/samples?q=" + "x" * 201, 400, "q: expected at most 200 characters"),
    ("/api/samples/nope", 404, "no sample with id 'nope'"),
    ("/api/image/nope", 404, "no sample with id 'nope'"),
    ("/api/thumb/nope", 404, "no sample with id 'nope'"),
    ("/api/image/..%2Fdataset.json", 404, "no sample with id '../dataset.json'"),
    ("/api/image/%2Fetc%2Fpasswd", 404, "no sample with id '/etc/passwd'"),
    ("/api/thumb/..%2F..%2F..%2Fetc%2Fpasswd", 404, "no sample with id"),
    ("/static/..%2Fapp.py", 404, "no such route: /static/../app.py"),
    ("/static/index.html", 404, "no static file"),
    ("/api/nothing", 404, "no such route"),
])
def test_bad_requests_get_json_errors(client: TestClient, path: str, status: int, message: str) -> None:
    response = client.get(path)
    assert response.status_code == status and message in response.json()["error"]


def test_edits_and_save_through_the_api(client: TestClient, det, tmp_path: Path) -> None:
    box = {"label": "red", "bbox": [1.0, 1.0, 9.0, 9.0]}
    response = client.post("/api/edits", json={"edits": [{"id": "img-003", "objects": [box]}]})
    assert response.status_code == 200 and response.json()["pending"] == 1
    assert response.json()["samples"][0]["edit"] == {"objects": [box]}
    assert client.get("/api/edits").json()["edits"] == [{"id": "img-003", "objects": [box]}]
    assert client.get("/api/samples?edited=1").json()["total"] == 1
    bad = [
        ({"edits": [{"id": "zz", "remove": True}]}, 404, "no sample with id 'zz'"),
        ({"edits": [{"id": "img-003", "objects": [{"label": "blue", "bbox": [0, 0, 1, 1]}]}]}, 422,
         "objects[0].label: expected a class listed in dataset.json"),
        ({"edits": []}, 400, "expected a list of 1 to"),
        ({"nothing": 1}, 400, "expected {\"edits\": [...]}"),
    ]
    for body, status, message in bad:
        response = client.post("/api/edits", json=body)
        assert response.status_code == status and message in response.json()["error"], response.text
    not_json = client.post("/api/edits", content=b"edits=1", headers={"content-type": "text/plain"})
    assert not_json.status_code == 415  # a form on another site cannot post here
    broken = client.post("/api/edits", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    assert client.post("/api/save", json={"name": "../../evil"}).status_code == 400
    saved = client.post("/api/save", json={"name": "det-fixed"})
    assert saved.status_code == 200 and saved.json()["changed"] == 1 and (tmp_path / "det-fixed").is_dir()


def test_issues_filter_through_the_api(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    folder = write_issues(tmp_path / "issues", [{"id": "1-000", "rank": 1, "given": "1", "suggested": "0",
                                                 "score": 0.1, "kind": "label"}])
    client = TestClient(create_app(session_for(data, tmp_path, issues=folder)))
    body = client.get("/api/samples?issues=1").json()
    assert body["total"] == 1 and body["samples"][0]["issue"]["suggested"] == "0"
    assert client.get("/api/info").json()["issues"] is True


def test_a_real_server_with_a_token(tmp_path: Path) -> None:
    session = session_for(make_classification_dataset(tmp_path / "ds", classes=2, per_class=1), tmp_path)
    with serving(session, token="s3cret") as served:
        base = served.url.rstrip("/")
        assert httpx.get(base + "/api/info").status_code == 403
        assert httpx.get(base + "/api/info?token=wrong").status_code == 403
        assert "token is required" in httpx.get(base + "/").json()["error"]
        assert httpx.get(base + "/api/info", headers={"Authorization": "token s3cret"}).status_code == 200
        with httpx.Client() as browser:
            page = browser.get(base + "/?token=s3cret")  # the printed address sets the cookie
            assert page.status_code == 200 and "pipeline_view_token" in page.headers["set-cookie"]
            assert browser.get(base + "/api/samples").json()["total"] == 2  # the cookie from now on
        other_host = httpx.get(base + "/api/info", headers={"Host": "evil.example:80", "Authorization": "token s3cret"})
        assert other_host.status_code == 400  # DNS rebinding: only the loopback names are accepted


def test_a_real_server_answers_what_the_test_client_does(det) -> None:
    with serving(det) as served:
        base = served.url.rstrip("/")
        assert httpx.get(base + "/api/samples?limit=2").json()["total"] == 6
        assert httpx.get(base + "/api/samples?split=bogus").status_code == 400
        raw = httpx.get(base + "/api/image/../../../../etc/passwd")  # (httpx normalises the dots away)
        assert raw.status_code == 404
        with httpx.Client() as c:
            request = c.build_request("GET", base + "/api/image/x")
            request.url = httpx.URL(base + "/api/image/..%2F..%2Fdataset.json")
            assert c.send(request).status_code == 404


def test_real_voc_photos_through_the_api(tmp_path: Path) -> None:
    from tests.helpers import invoke, shared_data

    src = shared_data("raccoon-voc")
    result = invoke("--quiet", "import", "voc", src, "--out", tmp_path / "raccoon")
    assert result.exit_code == 0, result.output
    client = TestClient(create_app(session_for(tmp_path / "raccoon", tmp_path)))
    page = client.get("/api/samples?limit=3").json()
    assert page["total"] == 200 and all(s["objects"] and s["objects"][0]["bbox"] for s in page["samples"])
    thumb = client.get(f"/api/thumb/{page['samples'][0]['id']}")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 256
    stats = client.get("/api/stats").json()
    assert stats["classes"] == {"raccoon": 200} and stats["findings"].get("duplicate-image", 0) >= 1

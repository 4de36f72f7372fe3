"""`fetch kaggle` through Kaggle's real client (kagglesdk) against a local API on a free port.

`KAGGLE_API_ENVIRONMENT=TEST` points the client at http://localhost:7777, a URL kagglesdk fixes
(`kagglesdk.kaggle_env`). The client's requests session honours the standard proxy variables, so
`HTTP_PROXY` names our server, on a port the system chose, as the proxy: every request for
localhost:7777 reaches it, and nothing ever connects to port 7777. The server speaks the client's
RPC style: POST /api/v1/{Service}/{Method} with a JSON body; downloads answer with a redirect to
the file, as kaggle.com does.
"""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import run_cli as run
from tests.sources.servers import LocalServer, Route

TOKEN = "KGAT_secret_token_value_1234"


def pixel_csv(n: int = 6, labelled: bool = True) -> bytes:
    head = (["label"] if labelled else []) + [f"pixel{i}" for i in range(16)]
    lines = [",".join(head)]
    for r in range(n):
        px = [str((r * 40 + i * 13) % 256) for i in range(16)]
        lines.append(",".join(([str(r % 3)] if labelled else []) + px))
    return ("\n".join(lines) + "\n").encode()


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Api:
    def __init__(self, srv: LocalServer) -> None:
        self.srv = srv
        self.auth: list[str] = []
        self.reject = False
        srv.fallback = self.handle
        srv.routes["/files/digits-v3.zip"] = Route(zipped({"digits/train.csv": pixel_csv(9),
                                                           "digits/test.csv": pixel_csv(3, labelled=False)}),
                                                   content_type="application/zip")
        srv.routes["/files/comp/train.csv"] = Route(pixel_csv(6), content_type="text/csv")
        # large single files come wrapped in a zip under the file's own name
        srv.routes["/files/comp/big.csv"] = Route(zipped({"big.csv": pixel_csv(4)}), content_type="application/zip")

    def handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}") if h.command == "POST" else {}
        self.auth.append(h.headers.get("Authorization", ""))
        if self.reject:
            return h.send_simple(401, b'{"code": 401, "message": "Unauthenticated"}', "application/json")
        path = h.path
        if path == "/api/v1/datasets.DatasetApiService/GetDataset":
            if body.get("ownerSlug") != "team" or body.get("datasetSlug") != "digits":
                return h.send_simple(404, b'{"code": 404, "message": "Not found"}', "application/json")
            return h.send_simple(200, json.dumps({"ref": "team/digits", "currentVersionNumber": 3}).encode(),
                                 "application/json")
        if path == "/api/v1/datasets.DatasetApiService/DownloadDataset":
            return h.send_simple(302, b"", "text/plain", {"Location": "/files/digits-v3.zip"})
        if path == "/api/v1/competitions.CompetitionApiService/DownloadDataFile":
            assert body["competitionName"] == "digit-recognizer"
            return h.send_simple(302, b"", "text/plain", {"Location": f"/files/comp/{body['fileName']}"})
        return h.send_simple(404, b'{"code": 404, "message": "Not found"}', "application/json")


TEST_ENDPOINT = "localhost:7777"  # kagglesdk's address for KAGGLE_API_ENVIRONMENT=TEST, reached through the proxy


@pytest.fixture(scope="module")
def api():
    with LocalServer() as srv:  # port 0: a free port
        yield Api(srv)


@pytest.fixture
def env(monkeypatch, tmp_path, api):
    for k in list(os.environ):
        if k.startswith("KAGGLE_") or k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    monkeypatch.setenv("HTTP_PROXY", api.srv.base)
    monkeypatch.setenv("http_proxy", api.srv.base)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    (tmp_path / "home").mkdir()
    api.reject = False
    api.auth.clear()
    api.srv.proxied.clear()
    return monkeypatch


def test_dataset_with_token_end_to_end_and_rerun(env, api, tmp_path):
    env.setenv("KAGGLE_API_TOKEN", TOKEN)
    out = tmp_path / "ds"
    assert run(["fetch", "kaggle", "team/digits", "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert len(ds.samples) == 9 and ds.classes == ["0", "1", "2"]
    assert ds.samples[0].width == 4 and ds.samples[0].split == "train"
    entry = ds.info.lineage[-1]
    assert entry["params"]["source"] == "kaggle" and entry["params"]["version"] == 3
    assert any(k.startswith("kaggle:team/digits@3/digits.zip") for k in entry["inputs"])
    assert f"Bearer {TOKEN}" in api.auth
    assert api.srv.proxied and set(api.srv.proxied) == {TEST_ENDPOINT}  # every request came as to a proxy
    served = api.srv.requests["/files/digits-v3.zip"]
    assert served == 1
    assert run(["fetch", "kaggle", "team/digits", "--out", str(out)]) == 0
    assert api.srv.requests["/files/digits-v3.zip"] == served  # present and verified: not downloaded again


def test_competition_file_with_kaggle_json_warns_when_shared(env, api, tmp_path, capsys):
    cfg = tmp_path / "home" / ".kaggle"
    cfg.mkdir()
    (cfg / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "k3y"}))
    os.chmod(cfg / "kaggle.json", 0o644)
    out = tmp_path / "comp"
    assert run(["fetch", "kaggle", "--competition", "digit-recognizer", "--file", "train.csv", "--out", str(out)]) == 0
    assert len(load_dataset(out).samples) == 6
    assert "readable by other users" in capsys.readouterr().err
    assert "Basic " + base64.b64encode(b"alice:k3y").decode() in api.auth


def test_no_credentials_is_our_error(env, api, tmp_path, capsys):
    assert run(["fetch", "kaggle", "team/digits", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no Kaggle credentials" in err and "KAGGLE_API_TOKEN" in err and "access_token" in err and "kaggle.json" in err
    assert api.auth == []  # nothing was sent


def test_rejected_token_is_never_printed_even_with_debug(env, api, tmp_path, capsys):
    env.setenv("KAGGLE_API_TOKEN", TOKEN)
    api.reject = True
    code = run(["--debug", "fetch", "kaggle", "team/digits", "--out", str(tmp_path / "x")])
    captured = capsys.readouterr()
    assert code == 2
    assert "refused the credentials" in captured.err
    assert TOKEN not in captured.err + captured.out


def test_token_file_and_unknown_dataset(env, api, tmp_path, capsys):
    (tmp_path / "home" / ".kaggle").mkdir()
    (tmp_path / "home" / ".kaggle" / "access_token").write_text(TOKEN + "\n")
    assert run(["fetch", "kaggle", "team/nothing", "--out", str(tmp_path / "x")]) == 2
    assert "not found on Kaggle" in capsys.readouterr().err
    assert f"Bearer {TOKEN}" in api.auth


def test_competition_file_served_zipped(env, api, tmp_path):
    env.setenv("KAGGLE_API_TOKEN", TOKEN)
    out = tmp_path / "big"
    args = ["fetch", "kaggle", "--competition", "digit-recognizer", "--file", "big.csv", "--out", str(out)]
    assert run(args) == 0
    assert len(load_dataset(out).samples) == 4
    assert (tmp_path / "big-raw" / "big.csv.zip").is_file()
    assert api.srv.requests["/files/comp/big.csv"] == 1  # the redirected response itself was read
    stamp = (tmp_path / "big-raw" / "big.csv.zip").stat().st_mtime_ns
    assert run(args) == 0  # present, same ETag: kept as it is
    assert (tmp_path / "big-raw" / "big.csv.zip").stat().st_mtime_ns == stamp

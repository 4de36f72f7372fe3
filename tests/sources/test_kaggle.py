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
import json
import os

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import run_cli as run
from tests.sources.servers import KAGGLE_TEST_ENDPOINT, LocalServer
from tests.sources.servers import KaggleApi as Api

TOKEN = "KGAT_secret_token_value_1234"


@pytest.fixture(scope="module")
def api():
    with LocalServer() as srv:  # port 0: a free port
        yield Api(srv)


@pytest.fixture
def env(monkeypatch, tmp_path, api):
    api.point_client_here(monkeypatch, tmp_path / "home")
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
    assert api.srv.proxied and set(api.srv.proxied) == {KAGGLE_TEST_ENDPOINT}  # every request came as to a proxy
    served = api.srv.requests["/files/digits-v3.zip"]
    assert served == 1
    assert run(["fetch", "kaggle", "team/digits", "--out", str(out), "--overwrite"]) == 0
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
    assert run([*args, "--overwrite"]) == 0  # present, same ETag: kept as it is
    assert (tmp_path / "big-raw" / "big.csv.zip").stat().st_mtime_ns == stamp

"""Promises of docs/auth.md that had no test: the account's current role counts, not the
token's; the generated auth secret (mode 0600) is shared by every server on a data folder;
one audit row per study of a multi-study STOW-RS."""

from __future__ import annotations

import stat
from pathlib import Path

from _auth_support import auth_client, bearer, services, token
from conftest import make_ct, multipart, to_bytes
from radpacs.auth.roles import Role


def test_the_account_s_current_role_counts_not_the_token_s(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data") as client:
        issuer = services(client).issuer
        # a token that claims admin for the reader account: the account's role decides
        claims_admin = bearer(issuer.issue("reader", [Role.ADMIN]).token)
        assert client.get("/api/users", headers=claims_admin).status_code == 403
        assert client.get("/dicom-web/studies", headers=claims_admin).status_code == 200
        # a token that claims reader for the admin account: the admin may manage
        claims_reader = bearer(issuer.issue("admin", [Role.READER]).token)
        assert client.get("/api/users", headers=claims_reader).status_code == 200


def test_the_generated_secret_is_private_and_shared_by_servers_on_one_folder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with auth_client(data) as first:
        secret = data / "auth-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        value = token(first, Role.READER)
        content = secret.read_bytes()
    with auth_client(data) as second:  # another worker process on the same folder
        assert secret.read_bytes() == content
        me = second.get("/api/auth/me", headers=bearer(value))
        assert me.status_code == 200 and me.json()["username"] == "reader"
    with auth_client(tmp_path / "other") as stranger:  # another folder: another secret
        assert stranger.get("/api/auth/me", headers=bearer(value)).status_code == 401


def test_a_stow_of_two_studies_writes_one_audit_row_per_study(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data") as client:
        a, b = make_ct(), make_ct()
        a2 = make_ct(a.StudyInstanceUID)  # a second instance of the first study
        body, content_type = multipart([to_bytes(ds) for ds in (a, b, a2)])
        uploader = bearer(token(client, Role.UPLOADER))
        stored = client.post(
            "/dicom-web/studies", content=body, headers={**uploader, "Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        admin = bearer(token(client, Role.ADMIN))
        events = client.get("/api/audit", params={"action": "store"}, headers=admin).json()
        rows = [e for e in events["events"] if e["action"] == "store"]
        assert sorted(e["study_uid"] for e in rows) == sorted(
            [a.StudyInstanceUID, b.StudyInstanceUID]
        )
        assert all(e["username"] == "uploader" and e["status"] == 200 for e in rows)

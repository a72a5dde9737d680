"""The Archive on SQLite and PostgreSQL: storing, idempotence, duplicates, deleting, checking."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from conftest import make_ct, to_bytes
from radpacs.archive import Archive, Level, Outcome, parse_query
from radpacs.archive.blobs import FolderBlobStore
from radpacs.errors import NotFound, StorageError
from radpacs.settings import DuplicatePolicy


def test_store_then_find_then_read_back(archive: Archive) -> None:
    dataset = make_ct(PatientName="Doe^Jane", PatientID="P1")
    [result] = archive.store_many([to_bytes(dataset)])
    assert result.outcome is Outcome.STORED
    assert result.sop_instance_uid == dataset.SOPInstanceUID
    [match] = archive.search(parse_query(Level.STUDY, [("PatientID", "P1")])).matches
    assert match["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]
    assert match["00201208"]["Value"] == [1]
    assert archive.read_dataset(dataset.SOPInstanceUID).PatientName == "Doe^Jane"


def test_the_same_instance_twice_is_stored_once(archive: Archive) -> None:
    data = to_bytes(make_ct())
    first, again = archive.store_many([data, data])
    assert (first.outcome, again.outcome) == (Outcome.STORED, Outcome.ALREADY_STORED)
    [later] = archive.store_many([data])
    assert later.outcome is Outcome.ALREADY_STORED
    assert archive.counts()["instances"] == 1
    assert len(list(archive.blobs.keys())) == 1


def test_a_different_object_under_a_known_uid_is_rejected_by_default(archive: Archive) -> None:
    original = make_ct(PatientName="First")
    archive.store_many([to_bytes(original)])
    changed = make_ct(
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
        PatientName="Second",
    )
    [result] = archive.store_many([to_bytes(changed)])
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason == 0x0111
    assert "duplicate_policy=reject" in result.message
    assert archive.read_dataset(original.SOPInstanceUID).PatientName == "First"
    assert len(list(archive.blobs.keys())) == 1


def test_replace_policy_swaps_the_object_and_its_file(archive: Archive) -> None:
    archive.duplicate_policy = DuplicatePolicy.REPLACE
    original = make_ct(PatientName="First")
    archive.store_many([to_bytes(original)])
    changed = make_ct(
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
        PatientName="Second",
    )
    [result] = archive.store_many([to_bytes(changed)])
    assert result.outcome is Outcome.REPLACED
    assert archive.read_dataset(original.SOPInstanceUID).PatientName == "Second"
    assert len(list(archive.blobs.keys())) == 1


def test_bad_objects_fail_alone(archive: Archive) -> None:
    good = to_bytes(make_ct())
    truncated = good[: len(good) - 100]
    no_uid = make_ct()
    del no_uid.SOPInstanceUID
    results = archive.store_many([b"not dicom", good, truncated, to_bytes(no_uid)])
    assert [r.outcome for r in results] == [
        Outcome.FAILED,
        Outcome.STORED,
        Outcome.FAILED,
        Outcome.FAILED,
    ]
    assert "not a DICOM" in results[0].message
    assert "truncated" in results[2].message
    assert "SOPInstanceUID is missing" in results[3].message
    assert all(r.failure_reason == 0xC000 for r in results if r.outcome is Outcome.FAILED)
    assert archive.counts()["instances"] == 1


def test_study_uid_mismatch_fails_with_c409(archive: Archive) -> None:
    [result] = archive.store_many([to_bytes(make_ct())], expected_study_uid="1.2.3")
    assert result.failure_reason == 0xC409
    assert archive.counts()["instances"] == 0


def test_delete_cascades_and_removes_files(archive: Archive) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    series_a, series_b = "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"
    datasets = [make_ct(study, series_a), make_ct(study, series_a), make_ct(study, series_b)]
    archive.store_many([to_bytes(d) for d in datasets])
    assert archive.delete(study, series_a, datasets[0].SOPInstanceUID) == 1
    assert archive.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 2}
    assert archive.delete(study, series_a) == 1
    assert archive.counts()["series"] == 1
    assert archive.delete(study) == 1
    assert archive.counts() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert list(archive.blobs.keys()) == []
    with pytest.raises(NotFound):
        archive.delete(study)


def _refuse_instance_rows(archive: Archive) -> None:
    """Make the database itself refuse every new instance row (a trigger), so the store path
    meets the failure where it really happens: in the index transaction."""
    with archive.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_instances BEFORE INSERT ON instance "
                    "BEGIN SELECT RAISE(ABORT, 'the disk of the index is full'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_instances() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'the disk of the index is full'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_instances BEFORE INSERT ON instance "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_instances()"
                )
            )


def test_a_failing_index_leaves_no_row_and_no_file(archive: Archive) -> None:
    _refuse_instance_rows(archive)
    with pytest.raises(StorageError, match="the index refused the store"):
        archive.store_many([to_bytes(make_ct()), to_bytes(make_ct())])
    assert archive.counts()["instances"] == 0
    assert list(archive.blobs.keys()) == []


def test_a_failing_file_write_leaves_no_row_and_no_file(archive: Archive) -> None:
    """The second file of a batch cannot be written (a plain file stands where its folder
    must go): the first one, already written and fsynced, is removed again, no row is made."""
    first, second = make_ct(), make_ct()
    datasets = [to_bytes(first), to_bytes(second)]
    from radpacs.archive.ingest import parse_instance

    blocked = parse_instance(datasets[1]).storage_key.rsplit("/", 1)[0]
    assert isinstance(archive.blobs, FolderBlobStore)
    (archive.blobs.root / blocked).parent.mkdir(parents=True, exist_ok=True)
    (archive.blobs.root / blocked).write_bytes(b"not a folder")
    with pytest.raises(StorageError, match="could not write blob"):
        archive.store_many(datasets)
    assert archive.counts()["instances"] == 0
    assert list(archive.blobs.keys()) == [blocked]  # only the obstacle the test put there
    assert list(archive.blobs.temporaries()) == []


def test_files_are_fsynced_before_their_rename_and_the_index_commits_last(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observed, not replaced: every os call still runs. Per file: fsync of the temporary
    file before the rename onto its key; then the folder's fsync; then the index commit."""
    import os

    from sqlalchemy import event

    from radpacs.archive import blobs

    calls: list[tuple[str, str]] = []
    names: dict[int, str] = {}
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def opened(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        names[fd] = str(path)
        return fd

    def fsynced(fd: int) -> None:
        real_fsync(fd)
        calls.append(("fsync", names.get(fd, "?")))

    def replaced(source: str, target: str) -> None:
        real_replace(source, target)
        calls.append(("replace", str(source)))

    monkeypatch.setattr(blobs.os, "open", opened)
    monkeypatch.setattr(blobs.os, "fsync", fsynced)
    monkeypatch.setattr(blobs.os, "replace", replaced)
    event.listen(archive.engine, "commit", lambda _connection: calls.append(("commit", "")))
    archive.store_many([to_bytes(make_ct()), to_bytes(make_ct())])
    temporaries = [name for kind, name in calls if kind == "replace"]
    assert len(temporaries) == 2
    for temporary in temporaries:
        assert calls.index(("fsync", temporary)) < calls.index(("replace", temporary))
    folder_syncs = [
        i
        for i, (kind, name) in enumerate(calls)
        if kind == "fsync" and not name.endswith(".partial")
    ]
    last_replace = max(calls.index(("replace", name)) for name in temporaries)
    assert folder_syncs and min(folder_syncs) > last_replace
    commits = [i for i, (kind, _) in enumerate(calls) if kind == "commit"]
    assert commits and commits[-1] > max(folder_syncs)


def test_check_reports_orphans_and_missing_files(archive: Archive) -> None:
    dataset = make_ct()
    archive.store_many([to_bytes(dataset)])
    assert isinstance(archive.blobs, FolderBlobStore)
    archive.blobs.put("ff/ff/orphan.dcm", b"left by a crash")
    report = archive.check()
    assert report.orphan_keys == ["ff/ff/orphan.dcm"]
    assert report.missing == []
    [key] = [k for k in archive.blobs.keys() if k != "ff/ff/orphan.dcm"]  # noqa: SIM118
    archive.blobs.delete(key)
    report = archive.check(clean=True)
    assert report.missing == [dataset.SOPInstanceUID]
    assert report.cleaned == 1
    assert not archive.blobs.exists("ff/ff/orphan.dcm")


def test_blob_writes_leave_no_temporary_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = FolderBlobStore(tmp_path)
    store.put("ab/cd/x.dcm", b"DICM")
    assert [p.name for p in (tmp_path / "ab" / "cd").iterdir()] == ["x.dcm"]
    for bad in ("../escape.dcm", "/etc/passwd", "ab/../../x", "ab//x", ""):
        with pytest.raises(StorageError):
            store.put(bad, b"x")


def test_store_events_reach_listeners_after_commit(archive: Archive) -> None:
    heard: list[list[str]] = []
    archive.add_listener(lambda results: heard.append([r.sop_instance_uid for r in results]))
    dataset = make_ct()
    archive.store_many([to_bytes(dataset), b"junk"])
    archive.store_many([to_bytes(dataset)])  # already stored: nothing new to announce
    assert heard == [[dataset.SOPInstanceUID]]


def test_concurrent_stores_of_the_same_new_instances(archive: Archive) -> None:
    """Four requests race to store one new series: each instance ends stored exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    study, series = "1.2.826.0.1.3680043.8.498.501", "1.2.826.0.1.3680043.8.498.502"
    batch = [to_bytes(make_ct(study, series, InstanceNumber=n)) for n in range(10)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(archive.store_many, [batch] * 4))
    outcomes = [result.outcome for answer in answers for result in answer]
    assert Outcome.FAILED not in outcomes
    assert outcomes.count(Outcome.STORED) == 10
    assert archive.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 10}
    assert len(list(archive.blobs.keys())) == 10

"""Artifact names in a manifest are plain relative paths inside the artifact folder.

A manifest entry ``../../x`` or ``/etc/hostname`` with a matching sha256, or a listed file that is a
symlink out of the folder, would make ``heqis up`` ship files from elsewhere and write release links
outside the remote workdir: every reader (ArtifactSet.open / verify) and the deploy refuse them with
one error naming the manifest and the entry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from heqis.errors import HeqisError
from heqis.fileio import sha256_file
from heqis.formats.artifacts import ArtifactSet, artifact_path, check_artifact_name


@pytest.fixture
def tampered(artifacts, tmp_path):
    """A copy of the exported set, and a function that lists one more file in its manifest."""
    root = tmp_path / "deploy_output"
    shutil.copytree(artifacts, root)
    outside = tmp_path / "secret.txt"
    outside.write_text("not an artifact\n")

    def add(name: str, sha_of: Path = outside) -> Path:
        doc = json.loads((root / "manifest.json").read_text())
        doc["files"][name] = sha256_file(sha_of)
        (root / "manifest.json").write_text(json.dumps(doc))
        return root

    return root, outside, add


def test_the_exported_set_opens(tampered):
    root, _, _ = tampered
    assert ArtifactSet.open(root).manifest["files"]


@pytest.mark.parametrize("name", ["../secret.txt", "../../secret.txt", "/etc/hostname", "sub/../../secret.txt",
                                  "a\\b", "model.onnx\nrouting.json", "nul\0name", "./routing.json", "", "tab\tname"])
def test_a_manifest_entry_outside_the_folder_is_refused(tampered, name):
    root, outside, add = tampered
    add(name, Path("/etc/hostname") if name == "/etc/hostname" and Path("/etc/hostname").exists() else outside)
    with pytest.raises(HeqisError) as info:
        ArtifactSet.open(root)
    message = info.value.message
    assert f"{root}/manifest.json" in message and repr(name) in message and "\n" not in message
    with pytest.raises(HeqisError, match="refusing file name"):
        ArtifactSet(root, json.loads((root / "manifest.json").read_text())).verify()


def test_a_listed_symlink_out_of_the_folder_is_not_shipped(tampered, tmp_path, monkeypatch):
    """Its sha256 matches, only the path gives it away: heqis up (contained=True) refuses it. A host's release
    is links into its store by design, so plain readers check names and sha256 only."""
    from heqis_remote.deploy import make_bundle
    from heqis_remote.fleet import FleetConfig

    root, outside, add = tampered
    (root / "extra.bin").symlink_to(outside)
    add("extra.bin")
    ArtifactSet.open(root)
    with pytest.raises(HeqisError, match=r"refusing file name 'extra.bin' \(it resolves outside the folder"):
        artifact_path(root, "extra.bin", contained=True)
    cfg = FleetConfig.model_validate({
        "fleet": {"name": "lab", "artifacts": str(root), "data_dir": str(tmp_path / "none")},
        "hosts": [{"name": "gw", "role": "gateway", "host": "192.0.2.10", "user": "heqis"},
                  {"name": "b1", "role": "brain", "host": "192.0.2.11", "user": "heqis"}]})
    monkeypatch.setattr("heqis_remote.deploy.build_wheel", lambda out: outside)     # no wheels in this test
    monkeypatch.setattr("heqis_remote.deploy.wheelhouse", lambda machine, python: tmp_path / "no-wheels")
    with pytest.raises(HeqisError, match="resolves outside the folder"):
        make_bundle(cfg, "x86_64", "3.11", tmp_path / "bundle")
    (root / "extra.bin").unlink()
    (root / "linked").symlink_to(outside.parent)             # a folder on the way that leads out
    with pytest.raises(HeqisError, match="resolves outside the folder"):
        artifact_path(root, "linked/secret.txt", contained=True)


def test_a_symlink_inside_the_folder_is_fine(tampered):
    root, _, add = tampered
    (root / "alias.json").symlink_to("routing.json")
    add("alias.json", root / "routing.json")
    ArtifactSet.open(root)


def test_generator_file_names_are_checked_too(tampered):
    root, _, _ = tampered
    doc = json.loads((root / "manifest.json").read_text())
    gid = next(iter(doc["generators"]))
    doc["generators"][gid]["onnx"] = "../../../etc/passwd"
    (root / "manifest.json").write_text(json.dumps(doc))
    arts = ArtifactSet.open(root)
    with pytest.raises(HeqisError, match="refusing file name"):
        arts.path(gid, "onnx")


def test_check_artifact_name_accepts_plain_relative_names(tmp_path):
    assert check_artifact_name("model_G1.onnx", tmp_path) == "model_G1.onnx"
    assert check_artifact_name("sub/dir/x.npy", tmp_path) == "sub/dir/x.npy"
    assert artifact_path(tmp_path, "sub/x.npy") == tmp_path / "sub" / "x.npy"


def test_the_deploy_refuses_them_again(tampered, tmp_path):
    """make_bundle reads the manifest through ArtifactSet; release links are built only from checked names."""
    from heqis_remote.deploy import make_bundle, release_name
    from heqis_remote.fleet import FleetConfig

    root, _, add = tampered
    add("../secret.txt")
    cfg = FleetConfig.model_validate({
        "fleet": {"name": "lab", "artifacts": str(root), "data_dir": str(tmp_path / "none")},
        "hosts": [{"name": "gw", "role": "gateway", "host": "192.0.2.10", "user": "heqis"},
                  {"name": "b1", "role": "brain", "host": "192.0.2.11", "user": "heqis"}]})
    with pytest.raises(HeqisError, match=r"manifest.json: refusing file name '../secret.txt'"):
        make_bundle(cfg, "x86_64", "3.11", tmp_path / "bundle")
    for bad in ("artifacts/../../x", "/etc/hostname", "artifacts/a\nb", "wheels\\x.whl"):
        with pytest.raises(HeqisError, match="refusing to ship"):
            release_name(bad)
    assert release_name("artifacts/model_G1.onnx") == "artifacts/model_G1.onnx"


def test_the_converted_rknn_models_and_their_record_are_shipped(tmp_path):
    """heqis up carries rknn/ (the gateway's watchdog loads rknn/watchdog.rknn only with its record):
    the models the record names, by their base name in rknn/, never a path it points elsewhere."""
    from heqis_remote.deploy import release_name, rknn_files

    assert rknn_files(tmp_path) == {}                                   # never converted: nothing
    rk = tmp_path / "rknn"
    rk.mkdir()
    (rk / "watchdog.rknn").write_bytes(b"npu")
    (rk / "model_G1.rknn").write_bytes(b"npu")
    (tmp_path.parent / "outside.rknn").write_bytes(b"x")
    (rk / "linked.rknn").symlink_to(tmp_path.parent / "outside.rknn")
    (rk / "manifest.json").write_text(json.dumps({
        "watchdog": {"path": "/research/deploy_output/rknn/watchdog.rknn", "sha256": "ab"},
        "G1": {"path": "rknn/model_G1.rknn"}, "G2": {"path": "rknn/missing.rknn"},
        "G3": {"path": "../../etc/passwd"}, "G4": {"path": "linked.rknn"}}))
    files = rknn_files(tmp_path)
    assert files == {"artifacts/rknn/manifest.json": rk / "manifest.json",
                     "artifacts/rknn/watchdog.rknn": rk / "watchdog.rknn",
                     "artifacts/rknn/model_G1.rknn": rk / "model_G1.rknn"}
    assert all(release_name(n) == n for n in files)
    (rk / "manifest.json").write_text("{not json")
    with pytest.raises(HeqisError, match="RKNN record is not valid JSON"):
        rknn_files(tmp_path)

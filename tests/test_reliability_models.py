"""Pretrained models and checkpoints that cannot be used: one line naming the file and the problem."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager

import pytest
import torch
import yaml

from speechconv.cli.main import main
from speechconv.errors import ConfigError
from speechconv.pretrained import load_pretrained, save_pretrained

NOBODY = 65534


@pytest.fixture(scope="module")
def hello_spotter():
    return load_pretrained("hello_small", fold_bn=False)


@pytest.fixture
def model_dir(hello_spotter, tmp_path):
    return save_pretrained(hello_spotter, tmp_path / "my_model")


def load_error(path) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError) as err:
            load_pretrained(path)
    assert not caught, [str(w.message) for w in caught]
    message = str(err.value)
    assert "\n" not in message
    return message


@contextmanager
def unprivileged():
    """Run as an ordinary user: root reads files whatever their mode."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_weights_say_permission_denied(hello_spotter):
    # A folder that an unprivileged user can enter (pytest's own tmp folders are private to root).
    folder = tempfile.mkdtemp(prefix="speechconv-perm-")
    try:
        os.chmod(folder, 0o755)
        model = save_pretrained(hello_spotter, os.path.join(folder, "model"))
        os.chmod(model, 0o755)
        os.chmod(model / "config.yaml", 0o644)
        os.chmod(model / "model.safetensors", 0)
        with unprivileged():
            message = load_error(model)
        assert message == f"{model / 'model.safetensors'}: cannot read weights (Permission denied)"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_bad_threshold_names_the_model(model_dir):
    config_path = model_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["detector"]["threshold"] = 7.5
    config_path.write_text(yaml.safe_dump(config))
    assert load_error(model_dir) == f"{config_path}: detector: threshold must be in [0, 1], got 7.5"


def test_yaml_error_is_one_line_with_line_and_column(model_dir, tmp_path, capsys):
    config_path = model_dir / "config.yaml"
    config_path.write_text("frontend: {name: logmel\nmodel: [1,\n  labels: x: y\n")
    message = load_error(model_dir)
    assert message.startswith(f"{config_path}: invalid YAML at line ")

    broken = tmp_path / "model.yaml"
    broken.write_text("name: tdnn\n  x: : y\n")
    for command in (["inspect", str(broken)], ["train", "--config", str(broken)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err == f"speechconv: {broken}: invalid YAML at line 2, column 4: mapping values are not allowed here\n"


class RunsCode:
    """Unpickling this calls a function: a weights-only load must refuse it."""

    def __reduce__(self):
        return (os.getcwd, ())


def write_checkpoints(folder) -> dict[str, str]:
    hparams = {"frontend": {"name": "logmel"}, "model": {"name": "tdnn"}, "labels": ["_background_", "hello"]}
    files = {}

    def save(name, obj, **kwargs):
        files[name] = str(folder / f"{name}.ckpt")
        torch.save(obj, files[name], **kwargs)

    save("code", {"state_dict": {}, "x": RunsCode()})
    save("code_legacy", {"state_dict": {}, "x": RunsCode()}, _use_new_zipfile_serialization=False)
    save("state_dict_is_text", {"state_dict": "x", "hyper_parameters": hparams})
    save("hyper_parameters_is_text", {"hyper_parameters": "x", "state_dict": {}})
    save("no_state_dict", {"hyper_parameters": "x"})
    with open(folder / "good.ckpt", "wb") as f:
        torch.save({"state_dict": {"a": torch.zeros(3)}, "hyper_parameters": hparams}, f)
    data = (folder / "good.ckpt").read_bytes()
    files["truncated"] = str(folder / "truncated.ckpt")
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    files["junk"] = str(folder / "junk.ckpt")
    (folder / "junk.ckpt").write_bytes(b"not a checkpoint " * 20)
    import pickle

    files["plain_pickle"] = str(folder / "plain_pickle.ckpt")
    (folder / "plain_pickle.ckpt").write_bytes(pickle.dumps({"state_dict": {}, "x": RunsCode()}, protocol=4))
    return files


EXPECTED = {
    "code": "cannot read checkpoint: torch's weights-only loader rejected it (Trying to load unsupported GLOBAL",
    "code_legacy": "cannot read checkpoint: torch's weights-only loader rejected it (Trying to load unsupported GLOBAL",
    "plain_pickle": "cannot read checkpoint: torch's weights-only loader rejected it (",
    "junk": "cannot read checkpoint: torch's weights-only loader rejected it (",
    "truncated": "cannot read checkpoint (PytorchStreamReader failed reading zip archive",
    "state_dict_is_text": "not a Lightning checkpoint ('state_dict' is not a mapping of names to tensors)",
    "hyper_parameters_is_text": "not a Lightning checkpoint ('hyper_parameters' is a str, expected a mapping)",
    "no_state_dict": "not a Lightning checkpoint (no 'state_dict')",
}


def test_rejected_checkpoints_are_one_line_without_torch_warnings(tmp_path, capfd):
    files = write_checkpoints(tmp_path)
    capfd.readouterr()
    for name, start in EXPECTED.items():
        message = load_error(files[name])
        assert message.startswith(f"{files[name]}: {start}"), message
        assert len(message) < 300, message
    assert capfd.readouterr().err == ""

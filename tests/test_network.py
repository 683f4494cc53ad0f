"""PolicyValueNet shapes and the checkpoint format (atomic save, loud and precise load failures)."""
import os

import pytest
import torch

from native.features import NUM_PLANES
from specmcts.config import NetConfig
from specmcts.network import (CheckpointError, PolicyValueNet, build_net, count_parameters, load_model,
                              make_model_id, save_model)

TINY = NetConfig(blocks=1, channels=16, policy_channels=2, value_channels=1, value_hidden=16)
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def planes(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, NUM_PLANES, size, size), generator=g).float()


def expected_parameters(n: int, cfg: NetConfig) -> int:
    """The architecture of the module docstring, counted by hand."""
    c, area, actions = cfg.channels, n * n, n * n + 1
    stem = NUM_PLANES * c * 9 + 2 * c
    tower = cfg.blocks * (2 * 9 * c * c + 4 * c)
    policy = c * cfg.policy_channels + 2 * cfg.policy_channels + cfg.policy_channels * area * actions + actions
    value = (c * cfg.value_channels + 2 * cfg.value_channels + cfg.value_channels * area * cfg.value_hidden
             + cfg.value_hidden + cfg.value_hidden + 1)
    return stem + tower + policy + value


@pytest.mark.parametrize("size", [9, 19])
def test_forward_shapes_and_value_range(size):
    net = build_net(size, TINY).eval()
    with torch.no_grad():
        logits, value = net(planes(3, size))
    assert logits.shape == (3, size * size + 1)
    assert value.shape == (3,)
    assert logits.dtype == value.dtype == torch.float32
    assert torch.all(value.abs() <= 1.0)


def test_value_stays_in_range_for_extreme_inputs():
    net = build_net(9, TINY).eval()
    with torch.no_grad():
        for p in net.value_fc2.parameters():
            p.mul_(1000.0)  # saturate the tanh
        _, value = net(planes(4, 9))
    assert torch.all(value.abs() <= 1.0)


def test_channels_last_gives_the_same_outputs():
    net = build_net(9, NetConfig(blocks=2, channels=32)).eval()
    x = planes(5, 9, seed=1)
    with torch.no_grad():
        ref_logits, ref_value = net(x)
        net = net.to(memory_format=torch.channels_last)
        logits, value = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(value, ref_value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size,cfg", [(9, NetConfig(6, 64)), (9, NetConfig(10, 128)), (19, NetConfig(2, 32)),
                                      (19, TINY)])
def test_parameter_count_matches_the_architecture(size, cfg):
    assert count_parameters(PolicyValueNet(size, cfg)) == expected_parameters(size, cfg)


def test_model_id_names_architecture_and_weights():
    net = build_net(9, NetConfig(2, 32))
    assert net.model_id.startswith("9x9-b2c32-")
    assert make_model_id(net, step=120).startswith("9x9-b2c32-s120-")
    before = make_model_id(net)
    with torch.no_grad():
        net.policy_fc.bias.add_(1.0)
    assert make_model_id(net) != before


def test_save_load_round_trip(tmp_path):
    net = build_net(9, TINY).eval()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "ckpt" / "model.pt"
    model_id = save_model(path, net, {"step": 7, "optimizer": opt.state_dict(), "config": {"name": "tiny"}})
    assert model_id == net.model_id and "-s7-" in model_id
    assert os.listdir(path.parent) == ["model.pt"]  # the temp file was renamed, nothing left behind

    loaded, meta = load_model(path, expect_board=9, expect_net=TINY)
    assert not loaded.training
    assert loaded.model_id == model_id == meta["model_id"]
    assert meta["step"] == 7 and meta["config"] == {"name": "tiny"} and meta["board_size"] == 9
    assert "model" not in meta and "optimizer" in meta
    x = planes(4, 9)
    with torch.no_grad():
        for a, b in zip(net(x), loaded(x)):
            assert torch.equal(a, b)


def test_save_rejects_reserved_keys(tmp_path):
    with pytest.raises(ValueError, match="board_size"):
        save_model(tmp_path / "m.pt", build_net(9, TINY), {"board_size": 19})


def _one_line(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, build_net(9, TINY))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    assert "unreadable or truncated" in _one_line(excinfo, path)


def test_garbage_and_missing_files(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00not a checkpoint at all\xff" * 10)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    _one_line(excinfo, path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError)


def test_a_torch_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    assert "not a specmcts checkpoint" in _one_line(excinfo, path)


def test_board_size_mismatch_says_which(tmp_path):
    path = tmp_path / "m19.pt"
    save_model(path, build_net(19, TINY))
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path, expect_board=9)
    assert "is for 19x19, asked for 9x9" in _one_line(excinfo, path)


def test_architecture_mismatch_says_which(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, build_net(9, TINY))
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path, expect_board=9, expect_net=NetConfig(blocks=6, channels=64))
    msg = _one_line(excinfo, path)
    assert "1 blocks x 16 channels" in msg and "asked for 6 blocks x 64 channels" in msg


def test_weights_that_do_not_fit_the_recorded_architecture(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, build_net(9, TINY))
    data = torch.load(path, weights_only=True)
    data["net"]["channels"] = 32  # record says 32 channels, weights have 16
    torch.save(data, path)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    assert "weights do not fit" in _one_line(excinfo, path)

    data["net"]["channels"] = 16
    data["net"]["blocks"] = 2  # a block the weights do not have
    torch.save(data, path)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    assert "missing or unexpected" in _one_line(excinfo, path)


@pytest.mark.gpu
@needs_gpu
def test_cuda_channels_last_bf16_close_to_cpu():
    net = build_net(9, NetConfig(2, 32)).eval()
    x = planes(8, 9)
    with torch.no_grad():
        ref_logits, ref_value = net(x)
        net = net.cuda().to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, value = net(x.cuda().contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(logits.float().cpu(), ref_logits, atol=0.1, rtol=0.05)
    torch.testing.assert_close(value.float().cpu(), ref_value, atol=0.05, rtol=0.05)


@pytest.mark.gpu
@needs_gpu
def test_load_model_onto_cuda(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, build_net(9, TINY))
    net, _ = load_model(path, device="cuda")
    assert next(net.parameters()).is_cuda

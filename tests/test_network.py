"""PolicyValueNet shapes and the checkpoint format (atomic save, loud and precise load failures)."""
import dataclasses
import os

import pytest
import torch

from native.features import NUM_PLANES
from specmcts.config import NetConfig
from specmcts.engine.network import (CheckpointError, PolicyValueNet, build_net, count_parameters, load_model,
                              make_model_id, save_model)

TINY = NetConfig(blocks=1, channels=16, policy_channels=2, value_channels=1, value_hidden=16)
TINY_FC = NetConfig(blocks=1, channels=16, policy_channels=2, value_channels=1, value_hidden=16, heads="fc")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def planes(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, NUM_PLANES, size, size), generator=g).float()


def expected_parameters(n: int, cfg: NetConfig) -> int:
    """The architecture of the module docstring, counted by hand."""
    c, area, actions = cfg.channels, n * n, n * n + 1
    stem = NUM_PLANES * c * 9 + 2 * c
    tower = cfg.blocks * (2 * 9 * c * c + 4 * c)
    if cfg.heads == "kata":
        pc, hc, vh = cfg.gpool_channels or c // 4, cfg.head_channels or c // 2, cfg.value_hidden
        pooled_blocks = cfg.blocks // cfg.gpool_every if cfg.gpool_every else 0
        tower += pooled_blocks * (9 * c * pc + 2 * pc + 3 * pc * c)
        policy = c * hc + (c * hc + 2 * hc) + 3 * hc * hc + 2 * hc + (hc + 1) + (3 * hc + 1)
        value = (c * hc + 2 * hc) + (3 * hc * vh + vh) + (2 * vh + 2) + (hc + 1)
        return stem + tower + policy + value
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
                                      (19, TINY), (9, NetConfig(6, 64, heads="fc")), (9, NetConfig(10, 128, heads="fc")),
                                      (19, NetConfig(2, 32, heads="fc")), (19, TINY_FC),
                                      (9, NetConfig(3, 48, heads="kata", head_channels=8, gpool_every=3, gpool_channels=6))])
def test_parameter_count_matches_the_architecture(size, cfg):
    assert count_parameters(PolicyValueNet(size, cfg)) == expected_parameters(size, cfg)


def test_model_id_names_architecture_and_weights():
    net = build_net(9, NetConfig(2, 32))
    assert net.model_id.startswith("9x9-b2c32-")
    assert make_model_id(net, step=120).startswith("9x9-b2c32-s120-")
    assert build_net(9, NetConfig(2, 32, heads="fc")).model_id.startswith("9x9-b2c32-fc-")
    before = make_model_id(net)
    with torch.no_grad():
        net.pass_fc.bias.add_(1.0)
    assert make_model_id(net) != before


def test_kata_net_evaluates_every_board_size_with_the_same_weights():
    """Fully convolutional: the weights of a 9x9 net load into a 19x19 or 5x5 one, and the auxiliary heads
    have the board's shape."""
    net9 = build_net(9, TINY).eval()
    for size in (5, 13, 19):
        other = PolicyValueNet(size, TINY).eval()
        other.load_state_dict(net9.state_dict())
        with torch.no_grad():
            out = other.heads(planes(2, size))
        assert out["policy"].shape == (2, size * size + 1) and out["value"].shape == (2,)
        assert out["ownership_logit"].shape == (2, size, size) and out["score"].shape == (2,)


def test_kata_forward_is_heads_without_aux():
    net = build_net(9, TINY).eval()
    x = planes(3, 9, seed=2)
    with torch.no_grad():
        logits, value = net(x)
        out = net.heads(x)
    torch.testing.assert_close(logits, out["policy"])
    torch.testing.assert_close(value, out["value"])
    assert not build_net(9, TINY_FC).has_aux_heads and net.has_aux_heads


def test_checkpoint_without_heads_record_loads_as_fc(tmp_path):
    """Checkpoints written before ``net.heads`` existed (their record lacks it) load as the fc nets they are."""
    net = build_net(9, TINY_FC).eval()
    path = tmp_path / "old.pt"
    save_model(path, net)
    data = torch.load(path, weights_only=True)
    for key in ("heads", "head_channels", "gpool_every", "gpool_channels"):
        data["net"].pop(key)
    torch.save(data, path)
    loaded, _ = load_model(path)
    assert loaded.net_cfg.heads == "fc" and loaded.net_cfg.gpool_every == 0
    x = planes(2, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], net(x)[0])


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
    """An fc-heads net fits one board size; a kata-heads net (no weight depends on the board) plays any."""
    path = tmp_path / "m19.pt"
    save_model(path, build_net(19, dataclasses.replace(TINY, heads="fc")))
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path, expect_board=9)
    assert "is for 19x19, asked for 9x9" in _one_line(excinfo, path)
    kata = tmp_path / "k19.pt"
    trained = build_net(19, dataclasses.replace(TINY, heads="kata"))
    save_model(kata, trained)
    net, meta = load_model(kata, expect_board=9)
    assert net.board_size == 9 and net.trained_board == 19 == meta["board_size"] and net.model_id.endswith("@9x9")
    x = torch.zeros(1, net.num_planes, 9, 9)
    assert net(x)[0].shape == (1, 82)
    same = load_model(kata, expect_board=19)[0]  # the weights are the same tensors on any board
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values()))


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


def test_the_shipped_9x9_net():
    """specmcts/weights/go9.pt: package data under 10 MB, the 6x48 kata net for 9x9 (configs/go9cpu-big.yaml),
    with the compute that made it."""
    from specmcts.engine.network import embedded_model, provenance, read_checkpoint

    path = embedded_model(9)
    assert path is not None and path.stat().st_size < 10 * 1024 * 1024
    net, meta = load_model(path, expect_board=9)
    assert net.net_cfg.heads == "kata" and "optimizer" not in meta
    assert (net.net_cfg.blocks, net.net_cfg.channels) == (6, 48)
    made = provenance(read_checkpoint(path))
    assert made["cpu_hours"] > 0 and made["games"] > 0 and made["config"] == "go9cpu-big"


SMALL_KATA = NetConfig(blocks=3, channels=16, value_hidden=16)


def _trained_like(cfg: NetConfig, seed: int = 0) -> PolicyValueNet:
    """A net whose BatchNorm statistics and scales are not the fresh defaults (as a trained one's are not)."""
    torch.manual_seed(seed)
    net = build_net(9, cfg)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point() and ("bn" in name or ".1." in name or "stem.1" in name):
                t.uniform_(0.5, 1.5) if name.endswith(("weight", "running_var")) else t.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("blocks,channels", [(3, 16), (5, 16), (3, 24), (6, 32)])
def test_a_grown_net_computes_what_the_small_one_did(blocks, channels):
    """Deeper and/or wider, the grown net's every output (policy, value, score, ownership) is the small
    net's, in eval mode and in training mode (batch statistics), on any board size."""
    from specmcts.engine.network import grow_net

    small = _trained_like(SMALL_KATA)
    grown = grow_net(small, dataclasses.replace(SMALL_KATA, blocks=blocks, channels=channels), seed=3)
    assert (grown.net_cfg.blocks, grown.net_cfg.channels) == (blocks, channels)
    for size in (9, 7):
        x = planes(8, size, seed=size)
        for mode in ("eval", "train"):
            small.train(mode == "train")
            grown.train(mode == "train")
            with torch.no_grad():
                want, got = small.heads(x), grown.heads(x)
            for key in want:
                torch.testing.assert_close(got[key], want[key], msg=f"{key} ({mode}, {size}x{size})")


def test_a_grown_net_learns_with_all_its_new_weights():
    """The zero weights that keep the old channels blind to the new ones, and the zero scales of the appended
    blocks, get gradients: training can use the new capacity (nothing is dead)."""
    from specmcts.engine.network import grow_net

    small = _trained_like(SMALL_KATA)
    grown = grow_net(small, dataclasses.replace(SMALL_KATA, blocks=5, channels=24), seed=1).train()
    out = grown.heads(planes(16, 9))
    loss = out["policy"].logsumexp(1).sum() + out["value"].square().sum() + out["ownership_logit"].square().sum()
    loss.backward()
    into_old = grown.tower[0].conv1.weight.grad[:16, 16:]  # new channels -> old channels: the zero block
    assert into_old.abs().sum() > 0
    assert grown.tower[4].bn2.weight.grad.abs().sum() > 0  # an appended block's zero scale
    assert grown.value_fc1.weight.grad[:, 16:].abs().sum() > 0  # a pooled layer's new inputs


def test_growing_refuses_what_it_cannot_do():
    from specmcts.engine.network import grow_net

    small = _trained_like(SMALL_KATA)
    for target, words in ((dataclasses.replace(SMALL_KATA, blocks=2), "does not shrink"),
                          (dataclasses.replace(SMALL_KATA, gpool_every=3), "gpool_every"),
                          (dataclasses.replace(SMALL_KATA, heads="fc"), "kata heads")):
        with pytest.raises(ValueError, match=words):
            grow_net(small, target)
    with pytest.raises(ValueError, match="kata heads"):
        grow_net(build_net(9, TINY_FC), dataclasses.replace(TINY_FC, blocks=2))


def test_an_unknown_architecture_record_is_one_line_on_any_board(tmp_path):
    """The board-size check reads the architecture record too: a record it cannot read is the one-line
    CheckpointError, whatever board is asked for."""
    path = tmp_path / "odd.pt"
    save_model(path, build_net(9, TINY))
    data = torch.load(path, weights_only=True)
    data["net"] = {**data["net"], "frobnicate": 3}
    torch.save(data, path)
    for board in (9, 19):
        with pytest.raises(CheckpointError, match="architecture record"):
            load_model(path, expect_board=board)


def test_shipped_on_a_size_without_its_own_net_is_the_nearest_kata_net_and_says_so(capsys, monkeypatch, tmp_path):
    """Kata heads play every size: `--model shipped` on 13x13 (no go13.pt ships) plays go9.pt, and says so in
    one line; a size that has its own file gets it silently; a package with no kata net refuses in one line."""
    from specmcts.engine import network
    from specmcts.engine.network import CheckpointError, embedded_any, model_label, resolve_model

    path = resolve_model("shipped", 13)
    assert path == str(network.embedded_model(9))
    assert "no net trained for 13x13 ships; playing the 9x9 net go9.pt" in capsys.readouterr().err
    assert model_label(path, 13) == "shipped"
    assert resolve_model("shipped", 9) == path and capsys.readouterr().err == ""
    assert embedded_any(19) == (network.embedded_model(9), 9)
    monkeypatch.setattr(network, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="no net ships for 13x13"):
        resolve_model("shipped", 13)

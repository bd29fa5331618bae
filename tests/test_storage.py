"""Compact records (the narrow profile's storage options): thinning and storing the per-unit samples changes no
number a chapter reads, and packing a run's result for the cache or a bundle changes nothing at all."""
import torch

from bnopt.book import experiments as E
from bnopt.runs.cache import from_packed, packed_bytes, result_digest
from bnopt.runs.config import ProbeSpec, dln_config, vgg_config
from bnopt.runs.train import train


def probed(storage: dict, steps: int = 9, every: int = 2):
    """A tiny VGG run with the activation and ICS probes at the given storage options."""
    kw = E.storage_kwargs(**storage)
    return train(vgg_config(**{
        "model.arch": "vgg11", "model.width": 0.125, "model.norm": "batch", "optim.steps": steps,
        "optim.batch_size": 16, "eval_every": 0, "data.eval_train_subset": 0, "data.eval_test": False,
        "probes": [ProbeSpec("activations", every=every, kwargs={"layers": [1, 8], **kw.get("activations", {})}),
                   ProbeSpec("ics", every=every, kwargs=kw.get("ics", {}))]}))


def test_compact_records_keep_every_scalar_and_thin_only_the_samples(tiny_data):
    full = probed({})
    compact = probed({"detail_every": 4, "activation_samples": 50, "sample_dtype": "bfloat16"})
    assert torch.equal(full["train_loss"], compact["train_loss"])          # a probe never changes training
    fa, ca = full["probes"]["activations"], compact["probes"]["activations"]
    assert [r["step"] for r in fa] == [r["step"] for r in ca] == [0, 2, 4, 6, 8]
    for f, c in zip(fa, ca):
        for layer in (1, 8):
            assert {k: f["data"][layer][k] for k in ("mean", "var", "unit")} == \
                   {k: c["data"][layer][k] for k in ("mean", "var", "unit")}    # over every value, in fp32: equal
            kept = c["step"] % 4 == 0
            assert ("values" in c["data"][layer]) == kept and "values" in f["data"][layer]
            if kept:
                v, full_v = c["data"][layer]["values"], f["data"][layer]["values"]
                assert v.dtype == torch.bfloat16 and len(v) == min(50, len(full_v))
                # the same positions' values (the first 50 of the same fixed draw), rounded to bf16
                assert set(v.float().tolist()) <= set(full_v.to(torch.bfloat16).float().tolist())
    fi, ci = full["probes"]["ics"], compact["probes"]["ics"]
    for f, c in zip(fi, ci):
        for k in ("l2", "cos", "shift", "g_norm", "gp_norm"):
            assert torch.equal(f["data"][k], c["data"][k])
        assert ("in_mean" in c["data"]) == (c["step"] % 4 == 0)
        if "in_mean" in c["data"]:
            assert all(torch.equal(a, b) for a, b in zip(f["data"]["in_mean"], c["data"]["in_mean"]))


def test_thinned_records_are_what_the_chapters_read(tiny_data):
    """The ridgelines draw only the records with samples; the drift compares the first and last records with
    moments; the ridgeline table's moments come from every record."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnopt.book import plotting as P
    from bnopt.book.chapters.ics import drift
    r = probed({"detail_every": 4, "activation_samples": 50, "sample_dtype": "bfloat16"})
    fig, ax = plt.subplots()
    P.ridgeline(ax, r["probes"]["activations"], 8)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4", "8"]
    plt.close(fig)
    d = drift([r])
    assert d.shape == (8, 1) and (d > 0).all()                  # steps 0 and 8: the network moved


def test_packing_a_quick_run_changes_nothing(tiny_data):
    """What result.pt and a bundle hold unpacks to the same bits: every tensor and number, so every glued
    number at any rounding."""
    r = train(dln_config(**{"optim.steps": 30, "probes": E.book_probes(10, 15, [1, 25], [1.0, 2.0])}))
    r["probes"]["activations"][0]["data"][1]["values"] = r["probes"]["activations"][0]["data"][1]["values"].bfloat16()
    back = from_packed(torch.load(__import__("io").BytesIO(packed_bytes(r)), weights_only=True))
    assert result_digest(back) == result_digest(r)
    assert back["probes"]["activations"][0]["data"][1]["values"].dtype == torch.bfloat16

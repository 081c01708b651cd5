"""DistilBertModelWithHeads behaviour and its errors (files from tests/golden/adapters)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import minidistil
from minidistil import DistilBertModelWithHeads, Parallel, Stack
from minidistil.adapters import AdapterError, MultiHeadOutput
from minidistil.checkpoints.loading import load_state_dict
from minidistil.checkpoints.safetensors_io import write_safetensors

GOLDEN = Path(__file__).resolve().parent / "golden" / "adapters"
ADAPTERS = GOLDEN / "adapters"
HEADS = GOLDEN / "heads"


@pytest.fixture
def model():
    return DistilBertModelWithHeads.from_pretrained(GOLDEN / "base", backend="numpy")


@pytest.fixture(scope="module")
def inputs():
    data = np.load(GOLDEN / "inputs.npz")
    return data["input_ids"], data["attention_mask"]


def copy_adapter(tmp_path, name, edit=None):
    """A copy of a golden adapter directory, its adapter_config.json edited by `edit(data)`."""
    target = tmp_path / name
    shutil.copytree(ADAPTERS / name, target)
    if edit is not None:
        path = target / "adapter_config.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return target


# ------------------------------------------------------------------------ the API


def test_public_names():
    assert minidistil.DistilBertModelWithHeads is DistilBertModelWithHeads
    assert minidistil.Stack is Stack and minidistil.Parallel is Parallel
    assert issubclass(AdapterError, minidistil.MinidistilError) and issubclass(AdapterError, ValueError)


def test_load_adapter_loads_the_head_beside_it(model, inputs):
    assert model.load_adapter(ADAPTERS / "pfeiffer") == "pfeiffer"
    assert set(model.adapters) == {"pfeiffer"} and set(model.heads) == {"pfeiffer"}
    assert model.active_adapters is None and model.active_head is None  # loaded, not activated (as the reference)
    model.set_active_adapters("pfeiffer")
    assert model.active_adapters == Stack("pfeiffer")
    assert model.active_head == "pfeiffer"
    assert model.get_labels() == ["neg", "neu", "pos"]
    assert model.get_labels_dict("pfeiffer") == {0: "neg", 1: "neu", 2: "pos"}
    out = model(*inputs)
    assert out.logits.shape == (2, 3) and out.logits.dtype == np.float32


def test_load_as_and_without_head(model):
    assert model.load_adapter(ADAPTERS / "pfeiffer", load_as="sentiment") == "sentiment"
    assert set(model.adapters) == {"sentiment"} and set(model.heads) == {"sentiment"}
    assert model.load_adapter(ADAPTERS / "houlsby", with_head=False, set_active=True) == "houlsby"
    assert "houlsby" not in model.heads
    assert model.active_adapters == Stack("houlsby")
    assert model.load_head(HEADS / "qa", load_as="squad") == "squad"
    assert model.active_head == "squad"  # load_head activates by default, as the reference


def test_per_call_override_leaves_the_active_setup(model, inputs):
    model.load_adapter(ADAPTERS / "pfeiffer", set_active=True)
    model.load_adapter(ADAPTERS / "houlsby")
    model.load_head(HEADS / "qa", set_active=False)
    active = model(*inputs)
    override = model(*inputs, adapter_names="houlsby", head="qa")
    assert set(override) == {"start_logits", "end_logits"}
    # adapter_names alone picks the head of that name when there is one
    tagged = model(*inputs, adapter_names="houlsby")
    assert tagged.logits.shape == (2, 7, 5)
    assert model.active_adapters == Stack("pfeiffer") and model.active_head == "pfeiffer"
    np.testing.assert_array_equal(model(*inputs).logits, active.logits)
    # no adapters for one call: the plain encoder under the same head
    plain = model(*inputs, adapter_names=[])
    assert not np.allclose(plain.logits, active.logits)


def test_no_head_gives_the_encoder_output(model, inputs):
    model.load_adapter(ADAPTERS / "lora", with_head=False, set_active=True)
    out = model(*inputs, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 7, 64)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    np.testing.assert_array_equal(out.hidden_states[-1], out.last_hidden_state)


def test_merge_and_reset_lora(model, inputs):
    model.load_adapter(ADAPTERS / "lora_all", set_active=True)
    unmerged = model(*inputs).last_hidden_state
    model.merge_adapter("lora_all")
    merged = model(*inputs).last_hidden_state
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)
    model.reset_adapter()
    np.testing.assert_array_equal(model(*inputs).last_hidden_state, unmerged)


def test_parallel_gives_one_output_per_head(model, inputs):
    model.load_adapter(ADAPTERS / "pfeiffer")
    model.load_adapter(ADAPTERS / "task")
    model.set_active_adapters(Parallel("pfeiffer", "task"))
    assert model.active_head == ["pfeiffer", "task"]
    out = model(*inputs)
    assert isinstance(out, MultiHeadOutput) and len(out) == 2
    assert [o.logits.shape for o in out] == [(2, 3), (2, 3)]
    np.testing.assert_array_equal(out.logits, np.concatenate([out[0].logits, out[1].logits]))
    single = model(*inputs, adapter_names="task", head="task")
    np.testing.assert_allclose(out[1].logits, single.logits, atol=1e-6)


def test_several_heads_on_one_setup(model, inputs):
    model.load_head(HEADS / "cls_1layer")
    model.load_head(HEADS / "regression")
    out = model(*inputs, head=["cls_1layer", "regression"])
    assert isinstance(out, MultiHeadOutput)
    assert [o.logits.shape for o in out] == [(2, 2), (2, 1)]


def test_delete_adapter_and_head(model):
    model.load_adapter(ADAPTERS / "pfeiffer", set_active=True)
    model.delete_adapter("pfeiffer")
    assert model.active_adapters is None and "pfeiffer" not in model.adapters
    model.delete_head("pfeiffer")
    assert model.active_head is None and not model.heads


def test_safetensors_and_bin_adapters_agree(tmp_path, model, inputs):
    """An adapter converted to adapter.safetensors gives the same outputs as its pytorch_adapter.bin."""
    model.load_adapter(ADAPTERS / "houlsby_gated", set_active=True)
    from_bin = model(*inputs).last_hidden_state
    target = tmp_path / "houlsby_gated"
    target.mkdir()
    shutil.copy(ADAPTERS / "houlsby_gated" / "adapter_config.json", target)
    state = {k: np.ascontiguousarray(v) for k, v in load_state_dict(ADAPTERS / "houlsby_gated" / "pytorch_adapter.bin").items()}
    write_safetensors(target / "adapter.safetensors", state)
    model.load_adapter(target, load_as="again", set_active=True)
    np.testing.assert_array_equal(model(*inputs).last_hidden_state, from_bin)


def test_static_task_head_becomes_the_default_flex_head():
    """A DistilBertForMaskedLM checkpoint's head loads as flex head "default", as in the reference."""
    from minidistil import DistilBertForMaskedLM

    path = Path(__file__).resolve().parent / "golden" / "checkpoint" / "tiny_mlm_safetensors"  # committed golden
    config = json.loads((path / "config.json").read_text())
    # The comparison means something only for what the reference's flex MLM head supports: exact gelu
    # and a DistilBertForMaskedLM checkpoint. A regenerated golden that changes either breaks this test.
    assert config.get("activation", "gelu") == "gelu", f"{path}: the flex MLM head needs activation 'gelu'"
    assert config.get("architectures") == ["DistilBertForMaskedLM"], f"{path}: not a DistilBertForMaskedLM checkpoint"
    flex = DistilBertModelWithHeads.from_pretrained(path, backend="numpy")
    assert flex.active_head == "default" and flex.heads["default"].head_type == "masked_lm"
    static = DistilBertForMaskedLM.from_pretrained(path, backend="numpy")
    ids = np.arange(1, 9).reshape(2, 4) % config["vocab_size"]
    np.testing.assert_allclose(flex(ids).logits, static(ids).logits, atol=1e-5)


# ------------------------------------------------------------------------ errors


def test_unknown_adapter_name(model, inputs):
    model.load_adapter(ADAPTERS / "pfeiffer")
    with pytest.raises(AdapterError, match="unknown adapter 'nope'.*pfeiffer"):
        model.set_active_adapters("nope")
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        model(*inputs, adapter_names=Stack("pfeiffer", "nope"))
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        model.merge_adapter("nope")


def test_unknown_head_name(model, inputs):
    model.load_head(HEADS / "qa")
    with pytest.raises(AdapterError, match="unknown head 'nope'.*qa"):
        model(*inputs, head="nope")
    with pytest.raises(AdapterError, match="unknown head 'nope'"):
        model.active_head = "nope"


def test_adapter_for_another_hidden_size(model):
    with pytest.raises(AdapterError, match="hidden size 32.*hidden size 64"):
        model.load_adapter(GOLDEN / "bad" / "small")


def test_adapter_for_another_model_type(model, tmp_path):
    target = copy_adapter(tmp_path, "pfeiffer", lambda d: d.update(model_type="bert"))
    with pytest.raises(AdapterError, match="model type 'bert'"):
        model.load_adapter(target)


def test_prefix_tuning_is_refused_by_name(model):
    with pytest.raises(AdapterError, match="unsupported adapter method prefix tuning"):
        model.load_adapter(GOLDEN / "bad" / "prefix")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["config"].update(phm_layer=True), "Compacter"),
        (lambda d: d["config"].update(inv_adapter="nice"), "invertible adapters"),
        (lambda d: d.update(config="mam"), "MAM"),
        (lambda d: d["config"].update(architecture="prompt_tuning"), "prompt tuning"),
        (lambda d: d["config"].update(non_linearity="bogus"), "unsupported activation 'bogus'"),
        (lambda d: d["config"].update(scaling="huge"), "unknown scaling 'huge'"),
    ],
)
def test_unsupported_bottleneck_configs(model, tmp_path, edit, message):
    with pytest.raises(AdapterError, match=message):
        model.load_adapter(copy_adapter(tmp_path, "pfeiffer", edit))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["config"].update(use_dora=True), "DoRA"),
        (lambda d: d["config"].update(vera_d=0.1), "VeRA"),
        (lambda d: d["config"].update(attn_matrices=["q", "o"]), "attn_matrices"),
    ],
)
def test_unsupported_lora_configs(model, tmp_path, edit, message):
    with pytest.raises(AdapterError, match=message):
        model.load_adapter(copy_adapter(tmp_path, "lora", edit))


def test_weights_that_do_not_fit_the_config(model, tmp_path):
    # the config places LoRA on q and v; say q only: the v weights are then unexpected
    target = copy_adapter(tmp_path, "lora", lambda d: d["config"].update(attn_matrices=["q"]))
    with pytest.raises(AdapterError, match="v_lin, which its config does not place there"):
        model.load_adapter(target)
    # a missing tensor is named
    target = tmp_path / "houlsby_missing"
    target.mkdir()
    shutil.copy(ADAPTERS / "houlsby" / "adapter_config.json", target)
    state = {k: np.ascontiguousarray(v) for k, v in load_state_dict(ADAPTERS / "houlsby" / "pytorch_adapter.bin").items()}
    del state["distilbert.transformer.layer.1.output_adapters.adapters.houlsby.adapter_up.bias"]
    write_safetensors(target / "adapter.safetensors", state)
    with pytest.raises(AdapterError, match="layer 1 output_adapter: missing tensor.*adapter_up.bias"):
        model.load_adapter(target)


def test_unsupported_head_type(model, tmp_path):
    target = tmp_path / "parser"
    shutil.copytree(HEADS / "tagging2", target)
    data = json.loads((target / "head_config.json").read_text())
    data["config"]["head_type"] = "dependency_parsing"
    (target / "head_config.json").write_text(json.dumps(data))
    with pytest.raises(AdapterError, match="unsupported head type 'dependency_parsing'"):
        model.load_head(target)


def test_missing_files(model, tmp_path):
    with pytest.raises(AdapterError, match="not a directory"):
        model.load_adapter(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="no adapter_config.json"):
        model.load_adapter(tmp_path / "empty")


def test_merge_errors(model):
    model.load_adapter(ADAPTERS / "lora_gated")
    model.load_adapter(ADAPTERS / "pfeiffer")
    with pytest.raises(AdapterError, match="gating"):
        model.merge_adapter("lora_gated")
    with pytest.raises(AdapterError, match="only LoRA"):
        model.merge_adapter("pfeiffer")


def test_parallel_head_count_must_match(model, inputs):
    model.load_adapter(ADAPTERS / "pfeiffer")
    model.load_adapter(ADAPTERS / "task")
    model.load_head(HEADS / "qa")
    with pytest.raises(AdapterError, match="2 parallel channels but 3 heads"):
        model(*inputs, adapter_names=Parallel("pfeiffer", "task"), head=["qa", "pfeiffer", "task"])


def test_bad_compositions(model):
    model.load_adapter(ADAPTERS / "pfeiffer")
    with pytest.raises(AdapterError, match="Parallel inside Parallel"):
        model.set_active_adapters(Parallel("pfeiffer", Parallel("pfeiffer")))
    with pytest.raises(AdapterError, match="adapter names only"):
        model.set_active_adapters(Stack("pfeiffer", Parallel("pfeiffer")))
    with pytest.raises(AdapterError, match="at least one adapter"):
        Stack()


def test_loading_a_tied_mlm_head_replaces_the_word_embeddings(model, tmp_path, inputs):
    """As in the reference: the MLM projection *is* the word-embedding matrix, so loading a head whose
    saved projection differs overwrites the embeddings the encoder reads too."""
    before = model(*inputs).last_hidden_state
    target = tmp_path / "mlm"
    target.mkdir()
    shutil.copy(HEADS / "mlm" / "head_config.json", target)
    state = {k: np.ascontiguousarray(v) for k, v in load_state_dict(HEADS / "mlm" / "pytorch_model_head.bin").items()}
    state["heads.mlm.3.weight"] = state["heads.mlm.3.weight"] * 2
    write_safetensors(target / "model_head.safetensors", state)
    model.load_head(target)
    np.testing.assert_array_equal(model.params["embeddings.word_embeddings.weight"], state["heads.mlm.3.weight"])
    after = model(*inputs, output_hidden_states=True).hidden_states[-1]  # the MLM head is active now
    assert not np.allclose(after, before)

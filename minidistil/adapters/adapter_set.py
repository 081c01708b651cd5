"""The adapters loaded into one encoder: what is active, what is merged, and the encoder runs they make.

    adapters = AdapterSet(runner)                        # runner: modeling/runner.py's EncoderRunner
    name = adapters.load("adapters/sst2")                # adapter_config.json + weights; not activated
    adapters.set_active(Stack("lang", name))
    runs = adapters.run(inputs, adapter_names=None)      # one (last, hidden, attn) per channel

One implementation behind every class that takes adapters: DistilBertModelWithHeads and the six
plain classes (modeling/classes.py) both hold an AdapterSet and differ only in what runs on the
encoder's output (flex heads or the class's own head). Adapters reach the forward pass only
through the encoder's hooks (modeling/transformer.py): LoRA after the q/k/v/lin1/lin2
projections, bottleneck adapters in place of the two residual + LayerNorm steps. A merged LoRA
is a second prepared copy of the weights, made again whenever the runner's weights change.
"""

from types import SimpleNamespace

from ..checkpoints import schema
from . import bottleneck as bn
from . import lora as lr
from .composition import channels, parse_setup
from .configs import parse_adapter_file
from .errors import AdapterError
from .files import ADAPTER_CONFIG, ADAPTER_WEIGHTS, check_directory, read_json, read_weights, split_adapter_tensors


class LoadedAdapter:
    """An adapter as loaded: its name, method configs, and modules by place."""

    def __init__(self, name, methods, bottlenecks, loras, source):
        self.name = name
        self.methods = methods
        self.bottlenecks = bottlenecks  # {(layer, location): bn.Bottleneck}
        self.loras = loras  # {(layer, linear): lr.LoRAModule}
        self.source = source

    @property
    def kinds(self):
        kinds = []
        for m in self.methods:
            if m["method"] == "lora":
                kinds.append("ia3" if m["composition_mode"] == "scale" else "lora")
            else:
                kinds.append("par_bn" if m["is_parallel"] else "bottleneck")
        return kinds

    def __repr__(self):
        return f"LoadedAdapter({self.name!r}, {'+'.join(self.kinds)})"


class AdapterSet:
    """Named adapters on one EncoderRunner, the active setup, and at most one merged LoRA."""

    def __init__(self, runner):
        self.runner = runner
        self.adapters = {}  # name -> LoadedAdapter
        self.active = None  # None, Stack or Parallel
        self.merged = None  # name of the merged LoRA adapter
        self._merged_for = None  # the runner.params the merged copy was made from
        self._merged_prepared = None

    # ---------------------------------------------------------------- loading
    def load(self, path, load_as=None):
        """Load an adapter the reference saved (save_adapter) from a directory; returns its name.

        Reads adapter_config.json and adapter.safetensors or pytorch_adapter.bin. The adapter is
        not made active (as in the reference); a head saved beside it is the caller's business.
        """
        directory = check_directory(path, "adapter")
        source = str(directory)
        config = self.runner.config
        data = read_json(directory / ADAPTER_CONFIG, "adapter config")
        saved_name, methods = parse_adapter_file(data, source, config.dim, config.n_layers)
        weights, state = read_weights(directory, ADAPTER_WEIGHTS, "adapter weights")
        has_inv = any(m.get("inv_adapter") for m in methods)
        bn_tensors, lora_tensors = split_adapter_tensors(state, saved_name, source, has_inv)
        bn_methods = [m for m in methods if m["method"] == "bottleneck"]
        lora_methods = [m for m in methods if m["method"] == "lora"]
        if len(bn_methods) > 1 or len(lora_methods) > 1:
            raise AdapterError(f"{source}: a config union with more than one bottleneck or LoRA part is not supported")
        if not bn_tensors and not lora_tensors:
            raise AdapterError(f"{source}: {weights.name} holds no weights for adapter {saved_name!r}")
        bottlenecks, loras = {}, {}
        if bn_methods:
            bottlenecks = bn.build_modules(saved_name, bn_methods[0], bn_tensors, source, config.dim, config.n_layers)
        elif bn_tensors:
            raise AdapterError(f"{source}: bottleneck weights but no bottleneck config for adapter {saved_name!r}")
        if lora_methods:
            loras = lr.build_modules(saved_name, lora_methods[0], lora_tensors, source, config)
        elif lora_tensors:
            raise AdapterError(f"{source}: LoRA weights but no LoRA config for adapter {saved_name!r}")
        for module in list(bottlenecks.values()) + list(loras.values()):
            module.prepare(self.runner.ops)
        name = load_as or saved_name
        if self.merged == name:
            self.reset()
        self.adapters[name] = LoadedAdapter(name, methods, bottlenecks, loras, source)
        return name

    def delete(self, name):
        self.check(name)
        if self.merged == name:
            self.reset()
        del self.adapters[name]
        if self.active is not None and name in self.active.flatten():
            self.active = None

    # ---------------------------------------------------------------- what is active
    def check(self, name):
        if name not in self.adapters:
            loaded = ", ".join(sorted(self.adapters)) or "none"
            raise AdapterError(f"unknown adapter {name!r}; loaded adapters: {loaded}")

    def parse(self, setup):
        """A user's setup (a name, list, Stack, Parallel or None) checked against the loaded adapters."""
        setup = parse_setup(setup)
        if setup is not None:
            for name in sorted(setup.flatten()):
                self.check(name)
        return setup

    def set_active(self, setup):
        self.active = self.parse(setup)
        return self.active

    def setup_for_call(self, adapter_names):
        """The setup a forward call runs: `adapter_names` when given, else the active one."""
        return self.active if adapter_names is None else self.parse(adapter_names)

    # ---------------------------------------------------------------- merged LoRA
    def merge(self, name):
        """Fold a LoRA / (IA)^3 adapter into the encoder's weights (faster; same outputs).

        As in the reference, a merged linear then ignores every LoRA module at that linear,
        whichever adapters are active; reset() undoes the merge.
        """
        self.check(name)
        if not self.adapters[name].loras:
            raise AdapterError(f"cannot merge adapter {name!r}: only LoRA / (IA)^3 adapters can be merged")
        if self.merged == name:
            return
        if self.merged is not None:
            raise AdapterError(f"adapter {self.merged!r} is already merged; call reset_adapter() first")
        self.merged = name
        try:
            self.prepared()  # merge now, so that an adapter that cannot be merged is refused here
        except AdapterError:
            self.reset()
            raise

    def reset(self):
        """Undo merge()."""
        self.merged = None
        self._merged_for = None
        self._merged_prepared = None

    @property
    def merged_linears(self):
        return frozenset(self.adapters[self.merged].loras) if self.merged is not None else frozenset()

    def prepared(self):
        """The backend weights the encoder runs with: the runner's, or those with the merged LoRA folded in."""
        if self.merged is None:
            return self.runner.prepared
        params = self.runner.params
        if self._merged_for is not params:  # first use, or the runner's weights changed since
            merged = dict(params)
            for (layer, linear), module in self.adapters[self.merged].loras.items():
                key = schema.layer_key(layer, linear, "weight")
                merged[key] = module.merged_weight(params[key])
            self._merged_prepared = self.runner.prepare(merged)  # packed (and quantized) as the runner's own
            self._merged_for = params
        return self._merged_prepared

    # ---------------------------------------------------------------- running
    def hooks(self, stack):
        """The encoder hooks for one Stack of adapter names (None when nothing applies)."""
        bottlenecks, loras = {}, {}
        merged = self.merged_linears
        for name in stack:
            adapter = self.adapters[name]
            for key, module in adapter.bottlenecks.items():
                bottlenecks.setdefault(key, []).append(module)
            for key, module in adapter.loras.items():
                if key not in merged:
                    loras.setdefault(key, []).append(module)
        ops = self.runner.ops
        hooks = SimpleNamespace()
        if loras:
            def project(layer, name, x, y):
                modules = loras.get((layer, name))
                return y if modules is None else lr.run_stack(ops, modules, x, y)

            hooks.project = project
        if bottlenecks:
            def residual(layer, name, hidden, residual_input, norm):
                modules = bottlenecks.get((layer, bn.RESIDUAL_LOCATIONS[name]))
                if modules is None:
                    return norm(hidden, residual_input)
                return bn.run_stack(ops, modules, hidden, residual_input, norm)

            hooks.residual = residual
        return hooks if (loras or bottlenecks) else None

    def run(self, inputs, setup, output_hidden_states=False, output_attentions=False):
        """The encoder on checked inputs under `setup`: one (last, hidden, attn) per channel (backend arrays).

        A Stack (or no setup) is one channel; a Parallel one per child, as the reference runs them.
        """
        prepared = self.prepared()
        return [
            self.runner.run(inputs, output_hidden_states, output_attentions, self.hooks(stack), prepared)
            for stack in channels(setup)
        ]

# %% [markdown]
# # Chapter 99 — Template: the shape of a chapter
#
# Copy this file to `chapters/src/NN_topic.py` (NN: the next free number) and replace this text with the
# chapter's introduction: what the learner will find out, on which model, and why it matters. The first cell must
# be this title cell (markdown); the build adds a banner and the setup cell (device, `check`) after it.
#
# Conventions (`utils/build.py` enforces them):
#
# - a code cell with `# SOLUTION` ... `# END SOLUTION` is an exercise: the learner sees a stub in its place, the
#   solutions notebook and `solutions/chNN_topic.py` see the code; a `check(fn)` cell follows it;
# - every exercise cell is followed by a markdown cell tagged `hint`: it is shown in a dropdown *and* by the
#   checker when a wrong answer matches no known mistake, so write guidance, not the code;
# - cells tagged `module` (imports, constants) also go into the solutions module;
# - a cell tagged `parameters` holds the settings a run can override (`MODEL_NAME`).

# %% tags=["module"]
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

# %% tags=["parameters"]
MODEL_NAME = "attn2l"  # a shipped model; "gpt2-small" when you are online

# %%
from utils.models import load_model

model = load_model(MODEL_NAME, device=device)
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer")

# %% [markdown]
# ## 1. A tensor exercise
#
# Exercises are pure functions: everything they need arrives as arguments, annotated with jaxtyping shapes.
# Scale each row of `x` to unit length (L2 norm 1).

# %%
def normalize_rows(x: Float[Tensor, "batch d"]) -> Float[Tensor, "batch d"]:
    """Each row of `x` divided by its L2 norm."""
    # SOLUTION
    return x / x.norm(dim=-1, keepdim=True)
    # END SOLUTION


# %% [markdown] tags=["hint"]
# The norm of each row is a reduction over the last dimension; keep that dimension so the division broadcasts
# row by row.

# %% [markdown]
# ## 2. An exercise on the model
#
# Return the `k` tokens the model finds most likely after `prompt`, most likely first, as strings.

# %%
def top_next_tokens(model: HookedTransformer, prompt: str, k: int = 3) -> list[str]:
    """The `k` most likely next tokens after `prompt` (with BOS), as strings, most likely first."""
    # SOLUTION
    logits = model(model.to_tokens(prompt))[0, -1]
    return [model.to_string(t) for t in logits.topk(k).indices]
    # END SOLUTION


# %% [markdown] tags=["hint"]
# Run the model on `model.to_tokens(prompt)` and look at the logits of the *last* position; `topk` gives the ids,
# `model.to_string` turns one id into text.

# %% [markdown]
# A demo cell can use the learner's function; print every number you state in the prose (f-strings), so the text
# never contradicts the model.

# %%
prompt = "When Mary and John went to the store, John gave a drink to"
print(f"after {prompt!r} the model expects {top_next_tokens(model, prompt)}")

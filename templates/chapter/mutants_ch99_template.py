"""Known mistakes for chapter 99 (the template). Copy to ``checks/mutants/chNN_topic.py``.

Each mutant is a plausible wrong implementation with a one-line description of the mistake, which a learner whose
output matches it is shown. The suite proves the checker rejects each one with the expected status (default
WRONG_VALUES) and names it; keep at least three per exercise. Mistakes that give the same output on every case are
named together; give them the same ``symptom=`` (what the learner observes, e.g. "your ablation changed nothing")
and the diagnosis says it first.
"""

from utils.checking import Mutant, Status


def norm_over_batch(x):
    return x / x.norm(dim=0, keepdim=True)


def divide_by_sum(x):
    return x / x.sum(dim=-1, keepdim=True)


def squared_norm(x):
    return x / (x ** 2).sum(dim=-1, keepdim=True)


def divide_by_max(x):
    return x / x.abs().max(dim=-1, keepdim=True).values


def first_position(model, prompt, k=3):
    logits = model(model.to_tokens(prompt))[0, 0]
    return [model.to_string(t) for t in logits.topk(k).indices]


def least_likely(model, prompt, k=3):
    logits = model(model.to_tokens(prompt))[0, -1]
    return [model.to_string(t) for t in logits.topk(k, largest=False).indices]


def no_bos(model, prompt, k=3):
    logits = model(model.to_tokens(prompt, prepend_bos=False))[0, -1]
    return [model.to_string(t) for t in logits.topk(k).indices]


def token_ids(model, prompt, k=3):
    return model(model.to_tokens(prompt))[0, -1].topk(k).indices.tolist()


MUTANTS = {
    "normalize_rows": [
        Mutant(norm_over_batch, "normalising each column (dim=0) instead of each row"),
        Mutant(divide_by_sum, "dividing by the sum of the row instead of its L2 norm"),
        Mutant(squared_norm, "dividing by the squared norm (forgetting the square root)"),
        Mutant(divide_by_max, "dividing by the largest entry of the row instead of its L2 norm"),
    ],
    "top_next_tokens": [
        Mutant(first_position, "reading the logits of the first position instead of the last"),
        Mutant(least_likely, "taking the least likely tokens (largest=False)"),
        Mutant(no_bos, "running the model without the BOS token"),
        Mutant(token_ids, "returning token ids instead of strings", Status.WRONG_TYPE),
    ],
}

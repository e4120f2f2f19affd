"""Grading part 10: sampling: greedy, temperature, top-k and top-p (mine/sampling.py).

Each check calls the learner's ``pick(logits, temperature, top_k, top_p, generator)`` on one
small vocabulary whose probabilities are known (so ranks and masses can be named), and
compares with the reference (``sml.generate.pick``). Which ids may come up is checked
exactly; how often each comes up is compared with the reference's draws: a few thousand
each, from fixed seeds, within a generous bound, so the same code always gets the same
verdict.
"""

import torch

from sml.generate import pick as reference
from sml.learn.core import Mismatch, Part, check

PROBS = torch.tensor([0.04, 0.30, 0.02, 0.20, 0.15, 0.12, 0.07, 0.10])  # at temperature 1
LOGITS = PROBS.log()  # (V,)
V = len(PROBS)
RANKED = torch.argsort(PROBS, descending=True).tolist()  # [1, 3, 4, 5, 7, 6, 0, 2]: ids, most likely first
DRAWS = 1000  # per distribution compared: two samples of the same one differ by about 0.04
SET_DRAWS = 300  # to see which ids come up: the rarest that must, 7%, misses 300 draws 1 time in 10^9
BOUND = 0.12  # largest total variation allowed between yours and the reference's frequencies


def one(fn, logits, temperature, top_k, top_p, generator) -> int:
    got = fn(logits.clone(), temperature, top_k, top_p, generator)
    if fn is reference:
        return got
    if not isinstance(got, int) or isinstance(got, bool):
        raise Mismatch(f"pick returned a {type(got).__name__}, not an int: return the id as a Python int"
                       " (int(...)), the token to append to the text")
    if not 0 <= got < len(logits):
        raise Mismatch(f"pick returned {got}, not an id of the vocabulary (0 to {len(logits) - 1})")
    return got


def draws(fn, n: int, temperature: float, top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [one(fn, LOGITS, temperature, top_k, top_p, g) for _ in range(n)]


def frequencies(ids: list[int]) -> torch.Tensor:
    return torch.bincount(torch.tensor(ids), minlength=V).double() / len(ids)  # (V,)


def rank(token: int) -> str:
    n = RANKED.index(token) + 1
    return f"{n}{'st' if n == 1 else 'nd' if n == 2 else 'rd' if n == 3 else 'th'} most likely"


@check("greedy (temperature 0)", "pick")
def greedy(mine):
    g = torch.Generator().manual_seed(8)
    for _ in range(4):
        logits = torch.randn(V, generator=g) * 2
        for top_k, top_p in ((0, 1.0), (3, 0.5)):
            try:
                got = one(mine.pick, logits, 0.0, top_k, top_p, g)
            except NotImplementedError:
                raise  # the stub: "to do", not a mistake
            except (RuntimeError, ZeroDivisionError) as e:
                raise Mismatch(f"with temperature 0 it raised {type(e).__name__} ({str(e).splitlines()[0]}):"
                               " temperature 0 means greedy, return the argmax before dividing by the"
                               " temperature") from None
            want = reference(logits, 0.0, top_k, top_p, g)
            if got != want:
                raise Mismatch(f"with temperature 0 it picked id {got}, not the most likely id {want}: temperature 0"
                               " means greedy, the argmax of the logits, no draw")


@check("top-k: only the k most likely ids", "pick")
def top_k(mine):
    k = 3
    top = RANKED[:k]
    drawn = set(draws(mine.pick, SET_DRAWS, 1.0, top_k=k, seed=9))
    if drawn <= set(range(k)) and not drawn <= set(top):
        raise Mismatch(f"it returns a rank (a position among the sorted candidates), not a token id: with top_k {k}"
                       f" it returned {sorted(drawn)}, the most likely ids are {top}; map the drawn position back"
                       " through the indices that topk returns")
    outside = sorted((t for t in drawn if t not in top), key=RANKED.index)
    if outside and RANKED.index(outside[-1]) == k:
        raise Mismatch(f"it keeps k + 1 ids, one more than k: with top_k {k} it drew id {outside[-1]}, the"
                       f" {rank(outside[-1])}; keep only the k most likely (logits.topk(k), not k + 1)")
    if outside:
        raise Mismatch(f"with top_k {k} it drew id {outside[-1]}, only the {rank(outside[-1])}: keep only the k"
                       f" most likely ids (here {top})")
    missing = [t for t in top if t not in drawn]
    if missing:
        few = "one too few (k - 1)" if len(missing) == 1 else f"{len(missing)} too few"
        raise Mismatch(f"it keeps {few}: with top_k {k}, id {missing[0]} (the {rank(missing[0])}) never came up in"
                       f" {SET_DRAWS} draws; every one of the k most likely ids can be drawn")
    try:
        drawn = set(draws(mine.pick, SET_DRAWS, 1.0, top_k=V + 4, seed=9))
    except NotImplementedError:
        raise
    except RuntimeError as e:
        raise Mismatch(f"with top_k {V + 4}, more than the vocabulary's {V} ids, it raised RuntimeError"
                       f" ({str(e).splitlines()[0]}): top_k >= V (like 0) keeps every id") from None
    if not set(RANKED[:6]) <= drawn:
        raise Mismatch(f"with top_k {V + 4}, more than the vocabulary's {V} ids, only ids {sorted(drawn)} came up in"
                       f" {SET_DRAWS} draws: top_k >= V (like 0) keeps every id")


@check("top-p: the smallest set of most likely ids reaching p", "pick")
def top_p(mine):
    p, keep = 0.6, RANKED[:3]  # 0.30 + 0.20 = 0.50 < 0.6, + 0.15 = 0.65 >= 0.6: the 3 most likely
    drawn = set(draws(mine.pick, SET_DRAWS, 1.0, top_p=p, seed=10))
    rule = ("keep each id while the mass of the ids ranked above it (not counting itself) is below top_p, so"
            " that the set just reaches top_p")
    extra = sorted((t for t in drawn if t not in keep), key=RANKED.index)
    if extra:
        how = "one id too many" if len(extra) == 1 else f"{len(extra)} ids too many"
        raise Mismatch(f"it keeps {how}: with top_p {p} it drew id {extra[0]} (the {rank(extra[0])}), but the 3 most"
                       f" likely already hold 0.65 >= {p}; {rule}")
    missing = [t for t in keep if t not in drawn]
    if missing:
        how = "one id too few" if len(missing) == 1 else f"{len(missing)} ids too few"
        raise Mismatch(f"it keeps {how}: with top_p {p} the smallest set reaching it is the 3 most likely (0.30 +"
                       f" 0.20 + 0.15 = 0.65), but id {missing[0]} (the {rank(missing[0])}) never came up in"
                       f" {SET_DRAWS} draws; {rule}")
    try:
        drawn = set(draws(mine.pick, 100, 1.0, top_p=0.1, seed=10))
    except NotImplementedError:
        raise
    except RuntimeError as e:
        raise Mismatch(f"with top_p 0.1, below the most likely id's 0.30 alone, it raised RuntimeError"
                       f" ({str(e).splitlines()[0]}): at least one id always stays, the most likely") from None
    if drawn != {RANKED[0]}:
        raise Mismatch(f"with top_p 0.1, below the most likely id's 0.30 alone, it drew ids {sorted(drawn)}: only"
                       f" the most likely ({RANKED[0]}) stays, at least one always does")


@check("temperature sharpens (0.5) and flattens (2.0)", "pick")
def temperature(mine):
    for t in (0.5, 2.0):
        got, want = frequencies(draws(mine.pick, DRAWS, t, seed=11)), frequencies(draws(reference, DRAWS, t, seed=11))
        gap = 0.5 * (got - want).abs().sum().item()  # total variation: the share of draws that went elsewhere
        if gap <= BOUND:
            continue
        top = RANKED[0]
        seen = (f"at temperature {t} the most likely id came up {got[top]:.0%} of the time, the reference's"
                f" {want[top]:.0%}")
        for mistake, alike in [
            (f"the logits are multiplied by the temperature: divide them by it ({'below' if t < 1 else 'above'} 1"
             f" {'sharpens' if t < 1 else 'flattens'}); {seen}", 1 / t),
            (f"the temperature changes nothing: divide the logits by it before the softmax (dividing the"
             f" probabilities instead cancels out once they are normalized); {seen}", 1.0),
        ]:
            if 0.5 * (got - frequencies(draws(reference, DRAWS, alike, seed=11))).abs().sum().item() <= BOUND:
                raise Mismatch(mistake)
        raise Mismatch(f"the draws do not follow softmax(logits / temperature): {seen} (total variation {gap:.2f},"
                       f" allowed {BOUND})")


@check("the draws follow the generator you are given", "pick")
def generator(mine):
    for settings in ((1.0, 0, 1.0), (0.8, 5, 0.85)):
        runs = []
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)  # only torch's global generator changes between the two runs
            g = torch.Generator().manual_seed(12)
            runs.append([one(mine.pick, LOGITS, *settings, g) for _ in range(30)])
        if runs[0] != runs[1]:
            raise Mismatch("the same generator seed gave different ids once torch's global seed changed: the draws"
                           " ignore the generator you are given; pass generator=generator to torch.multinomial, so"
                           " that a seed fixes the text")


@check("how often each id comes up (temperature 0.8, top_k 5, top_p 0.85)", "pick")
def distribution(mine):
    settings = (0.8, 5, 0.85)  # the 5 most likely, then top-p keeps 4 of them (0.78 < 0.85 <= 0.90)
    got = frequencies(draws(mine.pick, DRAWS, *settings, seed=13))
    want = frequencies(draws(reference, DRAWS, *settings, seed=13))
    gap = 0.5 * (got - want).abs().sum().item()
    if gap > BOUND:
        worst = int((got - want).abs().argmax())
        raise Mismatch(f"your draws' frequencies differ from the reference's by {gap:.2f} (total variation, allowed"
                       f" {BOUND}): id {worst} came up {got[worst]:.1%} of the time, the reference's {want[worst]:.1%};"
                       " apply the temperature first, then top-k, then top-p on the tempered probabilities")


PART = Part("sampling", "greedy, temperature, top-k and top-p", ("pick",), "LEARN.md, 10. Sampling",
            (greedy, top_k, top_p, temperature, generator, distribution))

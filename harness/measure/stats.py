"""Statistics computed from samples, never from a single number: spreads, confidence
intervals, and the two significance tests the reports use.

Every function takes the raw samples (NaN entries are dropped) and says honestly when
there are too few of them: an interval or a test that cannot be computed is NaN or carries
a `reason`, it is never made up from one value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05


def clean(samples: Iterable[float]) -> np.ndarray:
    """The finite samples as a float array (missing values and NaN from failed runs dropped)."""
    a = np.asarray(list(samples), dtype=float)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Spread:
    """Median with the interquartile range and the extremes of a sample."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float


def spread(samples: Iterable[float]) -> Spread:
    a = clean(samples)
    if a.size == 0:
        nan = math.nan
        return Spread(0, nan, nan, nan, nan, nan)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Spread(int(a.size), float(med), float(q1), float(q3), float(a.min()), float(a.max()))


@dataclass(frozen=True)
class MeanCI:
    """Mean with a two-sided Student-t confidence interval; `low`/`high` are NaN when n < 2."""

    n: int
    mean: float
    low: float
    high: float
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(samples: Iterable[float], confidence: float = 0.95) -> MeanCI:
    a = clean(samples)
    if a.size == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, confidence)
    mean = float(a.mean())
    if a.size < 2:
        return MeanCI(1, mean, math.nan, math.nan, confidence)
    # The t quantile, not 1.96: with 3 seeds the interval is 4.3 standard errors wide.
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, a.size - 1) * scipy_stats.sem(a))
    return MeanCI(int(a.size), mean, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class TestResult:
    """The outcome of a significance test, or why none was possible (`p_value` NaN, `reason`)."""

    test: str
    statistic: float
    p_value: float
    n: int  # samples per group (blocks for a paired test; the smallest group otherwise)
    reason: str = ""

    @property
    def possible(self) -> bool:
        return not self.reason

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.possible and self.p_value < alpha


def compare_groups(
    groups: Mapping[str, Mapping[str, float]], *, paired: bool | None = None
) -> TestResult:
    """Do the groups differ? `groups` maps a group (variant) to its samples keyed by block
    (a seed's task): {"tf2_function": {"seed0": 0.97, "seed1": 0.96}, ...}.

    When every group has a value for the same two or more blocks, the design is paired
    (every variant saw the same data, weights and batch order in a seed) and the Friedman
    test ranks the variants within each seed, so the large seed-to-seed variation does not
    hide a consistent difference. Otherwise (different seeds, or only two groups, where
    Friedman is undefined) the Kruskal-Wallis H test compares the groups as independent
    samples. Both are rank tests: accuracies from 2-5 seeds are not known to be normal.
    `paired=False` forces Kruskal-Wallis.
    """
    named = {g: {b: v for b, v in s.items() if np.isfinite(v)} for g, s in groups.items()}
    named = {g: s for g, s in named.items() if s}
    if len(named) < 2:
        return TestResult("none", math.nan, math.nan, 0, "fewer than two variants have results")
    common = sorted(set.intersection(*(set(s) for s in named.values())))
    use_paired = (len(named) >= 3 and len(common) >= 2) if paired is None else paired
    if use_paired:
        if len(named) < 3 or len(common) < 2:
            return TestResult(
                "Friedman", math.nan, math.nan, len(common), "needs 3 variants and 2 shared seeds"
            )
        table = np.array([[named[g][b] for b in common] for g in named])  # (groups, blocks)
        if np.all(table == table[:1, :]):
            # Every variant scored the same within every seed: all ranks tie, no difference.
            return TestResult("Friedman", 0.0, 1.0, len(common))
        stat, p = scipy_stats.friedmanchisquare(*table)
        return TestResult("Friedman", float(stat), float(p), len(common))
    samples = [np.array(list(s.values())) for s in named.values()]
    n_min = min(a.size for a in samples)
    if n_min < 2:
        return TestResult(
            "Kruskal-Wallis", math.nan, math.nan, n_min, "a variant has fewer than 2 seeds"
        )
    if np.ptp(np.concatenate(samples)) == 0:
        return TestResult("Kruskal-Wallis", 0.0, 1.0, n_min)
    stat, p = scipy_stats.kruskal(*samples)
    return TestResult("Kruskal-Wallis", float(stat), float(p), n_min)


@dataclass(frozen=True)
class ShiftResult:
    """B against A: the ratio of medians (B / A) and a Mann-Whitney U test of the samples."""

    a: Spread
    b: Spread
    ratio: float
    test: TestResult


def compare_samples(a: Sequence[float], b: Sequence[float]) -> ShiftResult:
    """Did the samples shift from A to B? Two-sided Mann-Whitney U: timing samples are
    skewed by the occasional slow window, so a rank test is safer than Welch's t."""
    xa, xb = clean(a), clean(b)
    sa, sb = spread(xa), spread(xb)
    ratio = sb.median / sa.median if sa.n and sb.n and sa.median != 0 else math.nan
    n = min(xa.size, xb.size)
    if n < 2:
        test = TestResult("Mann-Whitney U", math.nan, math.nan, n, "fewer than 2 samples")
    elif np.ptp(np.concatenate([xa, xb])) == 0:
        test = TestResult("Mann-Whitney U", 0.0, 1.0, n)
    else:
        u, p = scipy_stats.mannwhitneyu(xa, xb, alternative="two-sided")
        test = TestResult("Mann-Whitney U", float(u), float(p), n)
    return ShiftResult(sa, sb, float(ratio), test)


@dataclass(frozen=True)
class RatioCI:
    """median(b) / median(a) with a percentile-bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float = 0.95


def ratio_of_medians(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    seed: int = 0,
    quantile: float = 0.5,
) -> RatioCI:
    """How many times B's median (or another `quantile`) is A's, with an interval from
    resampling each group's samples (independent groups). With fewer than 2 samples on a side
    the interval is the point itself."""
    xa, xb = clean(a), clean(b)
    if not xa.size or not xb.size or np.quantile(xa, quantile) == 0:
        return RatioCI(math.nan, math.nan, math.nan, confidence)
    ratio = float(np.quantile(xb, quantile) / np.quantile(xa, quantile))
    if min(xa.size, xb.size) < 2:
        return RatioCI(ratio, ratio, ratio, confidence)
    result = scipy_stats.bootstrap(
        (xb, xa),
        lambda b, a, axis: (
            np.quantile(b, quantile, axis=axis) / np.quantile(a, quantile, axis=axis)
        ),
        vectorized=True,
        n_resamples=2000,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),  # the same report from the same folder
    )
    low, high = result.confidence_interval
    return RatioCI(ratio, float(low), float(high), confidence)


# --- independent samples across many groups: how the levels learn as written --------------


def mann_whitney(
    a: Sequence[float], b: Sequence[float], alternative: str = "two-sided"
) -> TestResult:
    """Mann-Whitney U of A against B (`alternative` "greater": A tends to be larger). Samples
    that are all one value cannot differ: p = 1."""
    xa, xb = clean(a), clean(b)
    n = min(xa.size, xb.size)
    if n < 2:
        return TestResult("Mann-Whitney U", math.nan, math.nan, n, "fewer than 2 samples")
    if np.ptp(np.concatenate([xa, xb])) == 0:
        return TestResult("Mann-Whitney U", float(xa.size * xb.size / 2), 1.0, n)
    u, p = scipy_stats.mannwhitneyu(xa, xb, alternative=alternative)
    return TestResult("Mann-Whitney U", float(u), float(p), n)


def kruskal_wallis(groups: Mapping[str, Sequence[float]]) -> TestResult:
    """Do independent groups (a variant's seeds each) differ? Kruskal-Wallis H."""
    return compare_groups({g: dict(enumerate(clean(s))) for g, s in groups.items()}, paired=False)


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta of A over B: P(a > b) - P(a < b) over every pair of samples. From -1
    (every a below every b) through 0 (neither tends to be larger) to 1; NaN if a side is
    empty. It is the rank-biserial correlation of the Mann-Whitney U test."""
    xa, xb = clean(a), clean(b)
    if not xa.size or not xb.size:
        return math.nan
    return float(np.sign(xa[:, None] - xb[None, :]).mean())


# Romano et al. (2006): |delta| below 0.147 negligible, 0.33 small, 0.474 medium, else large.
DELTA_LABELS = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"), (math.inf, "large"))


def delta_label(delta: float) -> str:
    if not math.isfinite(delta):
        return "unknown"
    return next(label for bound, label in DELTA_LABELS if abs(delta) < bound)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values, in the order given: reject every
    adjusted p below alpha and the family-wise error stays below alpha. NaN (no test) stays
    NaN and does not count towards the family."""
    p = np.asarray(list(p_values), dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (tested.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Pair:
    """Group A against group B: a two-sided Mann-Whitney U test, its p-value adjusted by Holm
    over every pair of the family, and Cliff's delta of A over B."""

    a: str
    b: str
    test: TestResult
    p_holm: float
    delta: float


def pairwise(groups: Mapping[str, Sequence[float]]) -> list[Pair]:
    """Every pair of groups, in the groups' order."""
    names = list(groups)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    tests = [mann_whitney(groups[a], groups[b]) for a, b in pairs]
    adjusted = holm([t.p_value for t in tests])
    return [
        Pair(a, b, t, p, cliffs_delta(groups[a], groups[b]))
        for (a, b), t, p in zip(pairs, tests, adjusted, strict=True)
    ]


# --- speed: a process is the unit of replication, its timed windows are sub-samples --------
#
# Windows of one process share its state (where the kernel placed its threads, which mode its
# thread pools settled in), so they are not independent: two processes of the same code differ
# by more than two windows of one process. Following Kalibera & Jones, "Rigorous benchmarking in
# reasonable time" (ISMM 2013), intervals come from a two-level bootstrap (processes, then
# windows within each) and tests compare one number per process.
#
# With the few processes a suite runs (3 by default) the bootstrap alone is too narrow when
# processes differ more than windows: resampling 3 processes sees only 10 distinct sets of them.
# In simulated suites with a known truth (processes 3 % apart, windows 1 %) its 95 % interval
# held the true ratio in 88 % of them at 3 processes. Every interval is therefore also at least
# as wide as Student's t interval on the processes' log medians (Welch's, for a ratio), which
# held it in 95-98 % of them at every mix of the two spreads tried (tests/test_speed_stats.py).

Nested = Mapping[object, Sequence[float]]  # a process (seed) -> its windows


def _levels(nested: Nested) -> list[np.ndarray]:
    """Each process' finite windows; processes without any are dropped."""
    return [a for a in (clean(w) for w in nested.values()) if a.size]


def process_medians(nested: Nested) -> np.ndarray:
    """One number per process: the median of its windows."""
    return np.array([float(np.median(a)) for a in _levels(nested)])


def pooled_median(nested: Nested) -> float:
    levels = _levels(nested)
    return float(np.median(np.concatenate(levels))) if levels else math.nan


def two_level_resamples(
    nested: Nested, n_resamples: int = 2000, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The pooled median of `n_resamples` two-level bootstrap samples: draw the processes with
    replacement, then each drawn process' windows with replacement."""
    rng = rng or np.random.default_rng(0)
    levels = _levels(nested)
    if not levels:
        return np.full(n_resamples, math.nan)
    width = max(a.size for a in levels)
    # every process' windows resampled n times, padded to one width with NaN: (P, n, width)
    inner = np.full((len(levels), n_resamples, width), math.nan)
    for i, a in enumerate(levels):
        inner[i, :, : a.size] = a[rng.integers(0, a.size, (n_resamples, a.size))]
    chosen = rng.integers(0, len(levels), (n_resamples, len(levels)))
    drawn = inner[chosen, np.arange(n_resamples)[:, None]]  # (n, P, width)
    return np.nanmedian(drawn.reshape(n_resamples, -1), axis=1)


def process_t_half_width(a: Nested | None, b: Nested, confidence: float = 0.95) -> float:
    """The half-width, in logs, of Student's t interval on the processes' log medians: of B's
    pooled median alone (`a` None; n - 1 degrees of freedom), or of B over A (Welch's interval,
    Welch-Satterthwaite degrees of freedom). inf when a side has fewer than 2 processes."""
    sides = [np.log(process_medians(side)) for side in (a, b) if side is not None]
    if min(s.size for s in sides) < 2:
        return math.inf
    variances = [float(np.var(s, ddof=1)) / s.size for s in sides]
    total = sum(variances)
    if total == 0:
        return 0.0
    df = total**2 / sum(v**2 / (s.size - 1) for v, s in zip(variances, sides, strict=True))
    return float(scipy_stats.t.ppf((1 + confidence) / 2, df)) * math.sqrt(total)


MIN_PROCESSES = 3  # fewer say nothing of the spread between processes


def relative_half_width(nested: Nested, confidence: float = 0.95) -> float:
    """Half the width of the pooled median's interval, over the median: 0.05 means +-5 %. The
    interval is the two-level bootstrap's, widened where needed to the t interval on the
    processes' medians. inf with fewer than MIN_PROCESSES processes, whose spread is unknown."""
    if len(_levels(nested)) < MIN_PROCESSES:
        return math.inf
    median = pooled_median(nested)
    draws = two_level_resamples(nested)
    low, high = np.nanquantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    half = process_t_half_width(None, nested, confidence)
    low, high = min(low, median * math.exp(-half)), max(high, median * math.exp(half))
    return float((high - low) / 2 / median)


@dataclass(frozen=True)
class SpeedRatio:
    """B's throughput over A's (pooled medians) with a two-level bootstrap interval, the
    number of processes behind each side, and whether the difference is resolved: the whole
    interval lies beyond `resolution`, the largest difference the suite measured between
    identical computations (its A/A control)."""

    ratio: float
    low: float
    high: float
    processes: tuple[int, int]
    resolution: float
    confidence: float = 0.95

    @property
    def resolved(self) -> bool:
        bound = 1 + (self.resolution if math.isfinite(self.resolution) else 0.0)
        return math.isfinite(self.low) and (self.low > bound or self.high < 1 / bound)

    @property
    def verdict(self) -> str:
        """'faster' (B over A), 'slower', or 'not resolved'."""
        if not self.resolved:
            return "not resolved"
        return "faster" if self.ratio > 1 else "slower"


def speed_ratio(
    a: Nested,
    b: Nested,
    resolution: float = math.nan,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 2000,
) -> SpeedRatio:
    """B's throughput over A's, each side resampled at both levels independently; the interval
    is the bootstrap's, widened where needed to Welch's t interval on the processes' log
    medians. With fewer than 2 processes on a side no interval is possible (NaN), and nothing
    is resolved."""
    na, nb = len(_levels(a)), len(_levels(b))
    ma, mb = pooled_median(a), pooled_median(b)
    ratio = mb / ma if ma and math.isfinite(ma) and math.isfinite(mb) else math.nan
    if min(na, nb) < 2 or not math.isfinite(ratio):
        return SpeedRatio(ratio, math.nan, math.nan, (na, nb), resolution, confidence)
    rng = np.random.default_rng(seed)  # the same report from the same folder
    ratios = two_level_resamples(b, n_resamples, rng) / two_level_resamples(a, n_resamples, rng)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    half = process_t_half_width(a, b, confidence)
    low, high = min(low, ratio * math.exp(-half)), max(high, ratio * math.exp(half))
    return SpeedRatio(ratio, float(low), float(high), (na, nb), resolution, confidence)


def process_test(a: Nested, b: Nested) -> TestResult:
    """Two-sided Mann-Whitney U on the per-process medians: as many samples as processes,
    which is what a few processes can show (3 against 3 can never reach p < 0.05)."""
    return mann_whitney(process_medians(a), process_medians(b))


def aa_resolution(groups: Mapping[str, Nested]) -> float:
    """The largest relative difference between the pooled medians of computations known to be
    identical (`groups`: name -> its processes' windows): what the suite cannot tell apart.
    NaN with fewer than two groups."""
    medians = [m for m in (pooled_median(g) for g in groups.values()) if m > 0]
    if len(medians) < 2:
        return math.nan
    return max(medians) / min(medians) - 1

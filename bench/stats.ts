/**
 * The arithmetic of comparing implementations measured in turns: ratios taken pair by pair
 * (slice k of A against slice k of B, which ran next to each other in time), their median and
 * spread, and whether two runs agree. Pure functions, unit-tested in test/bench/stats.test.ts.
 */

/** The median of `values` (the mean of the two middle ones for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/**
 * The `q` quantile (0..1) of `values`, interpolating linearly between the two nearest ranks (the
 * definition of most spreadsheets and of R's default); NaN when empty.
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * Math.min(1, Math.max(0, q));
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (at - low);
}

/** A ratio between two measured implementations, and how much it moved within the run. */
export interface RatioStat {
  /** The ratio reported: the median of the per-pair ratios, or of the totals when unpaired. */
  ratio: number;
  /** Each pair's ratio, in the order the pairs ran (empty when the sides were not paired). */
  pairs: number[];
  /** Lowest and highest per-pair ratio (both equal `ratio` when unpaired). */
  min: number;
  max: number;
  /**
   * (Upper quartile - lower quartile) of the per-pair ratios, divided by their median: 0.1 means
   * the middle half of the pairs lies within a band 10% of the ratio wide. 0 when unpaired.
   */
  relativeIqr: number;
}

/**
 * `a / b`, pair by pair when both sides have one value per slice or round taken in turns (the
 * same count, at least two), else the ratio of the totals. Pairs with a zero or missing side are
 * left out.
 */
export function pairedRatio(
  totalA: number,
  totalB: number,
  runsA?: readonly number[],
  runsB?: readonly number[],
): RatioStat {
  const pairs: number[] = [];
  if (runsA && runsB && runsA.length === runsB.length && runsA.length >= 2) {
    for (let k = 0; k < runsA.length; k++) {
      const x = runsA[k]!;
      const y = runsB[k]!;
      if (x > 0 && y > 0 && Number.isFinite(x) && Number.isFinite(y)) pairs.push(x / y);
    }
  }
  if (pairs.length < 2) {
    const ratio = totalA / totalB;
    return { ratio, pairs: [], min: ratio, max: ratio, relativeIqr: 0 };
  }
  const ratio = median(pairs);
  return {
    ratio,
    pairs,
    min: Math.min(...pairs),
    max: Math.max(...pairs),
    relativeIqr: (quantile(pairs, 0.75) - quantile(pairs, 0.25)) / ratio,
  };
}

/** The tolerance two runs' ratios must agree within (issue 16: 20%). */
export const AGREEMENT = 0.2;

/**
 * How far run B's ratio is from run A's, relative to A's: (b - a) / a. Two runs agree on a ratio
 * when its absolute value is at most `tolerance`.
 */
export function relativeDifference(a: number, b: number): number {
  return (b - a) / a;
}

export function agrees(a: number, b: number, tolerance = AGREEMENT): boolean {
  // A hair of slack for the rounding of what is printed (0.2000000001 is 20%).
  return Math.abs(relativeDifference(a, b)) <= tolerance + 1e-9;
}

/** "0.81–1.05x" for a per-pair range, or "" when the ratio was not taken in pairs. */
export function spreadLabel(stat: RatioStat, digits = 2): string {
  if (stat.pairs.length === 0) return '';
  return `${stat.min.toFixed(digits)}–${stat.max.toFixed(digits)}x`;
}

//! Dinucleotide shuffles of one-hot sequences, draw for draw as tangermeme 1.6.0's
//! `tangermeme.ersatz.dinucleotide_shuffle` (its numba kernel `_shuffle_sequence`, seeded
//! per sequence with `numpy.random.seed` inside numba), and DeepLIFT-SHAP against such
//! shuffles as tangermeme's `deep_lift_shap` draws them.

use crate::error::{Error, Result};
use crate::explain::Target;
use crate::float::Float;
use crate::network::Network;
use ndarray::{Array4, ArrayD, ArrayView2, Axis, Ix3};

use super::deep_lift_shap::{deep_lift_shap, SequenceAttribution};

/// The Mersenne Twister MT19937 as numba keeps it for `numpy.random` inside jitted code
/// (numba's `_random.c`: `numba_rnd_init`, the reference `init_genrand` seeding with a
/// 32-bit integer, and `numba_rnd_shuffle`; tempering in `randomimpl.get_next_int32`).
struct Mt19937 {
    mt: [u32; 624],
    index: usize,
}

impl Mt19937 {
    const N: usize = 624;
    const M: usize = 397;

    fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        let mut s = seed;
        for (pos, v) in mt.iter_mut().enumerate() {
            *v = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        Self { mt, index: Self::N }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..Self::N {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % Self::N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.mt[i] = self.mt[(i + Self::M) % Self::N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= Self::N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `numpy.random.randint(0, n)` inside numba (`randomimpl._randrange_impl` with the
    /// `"np"` state): no draw for n = 1, otherwise the low `bits(n − 1)` bits of one word
    /// (two for more than 32 bits, high word first), rejected while ≥ n.
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let bits = 64 - (n - 1).leading_zeros();
        loop {
            let r = if bits <= 32 {
                u64::from(self.next_u32() & (u32::MAX >> (32 - bits)))
            } else {
                let high = u64::from(self.next_u32() & (u32::MAX >> (64 - bits)));
                (high << 32) | u64::from(self.next_u32())
            };
            if r < n {
                return r;
            }
        }
    }

    /// `numpy.random.permutation(m)` inside numba: `arange(m)` shuffled by Fisher–Yates from
    /// the end (`randomimpl.do_shuffle_impl`, `j = randint(i + 1)` for i = m − 1 down to 1).
    fn permutation(&mut self, m: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..m).collect();
        for i in (1..m).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Shuffles the letter codes `codes` (values below `n_chars`) `n` times with the generator
/// seeded by `seed`, as tangermeme's `_shuffle_sequence`: the successors of each letter
/// are permuted (all but the last, which keeps the walk an Eulerian path) cumulatively, one
/// permutation per letter and shuffle, letters in code order, then walked from the first
/// letter.
fn shuffle_codes(codes: &[usize], n_chars: usize, n: usize, seed: u32) -> Vec<Vec<usize>> {
    let len = codes.len();
    if len == 0 {
        return vec![Vec::new(); n];
    }
    let mut rng = Mt19937::new(seed);
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n_chars];
    for j in 0..len - 1 {
        next[codes[j]].push(j + 1);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        for succ in next.iter_mut() {
            let count = succ.len();
            let order = rng.permutation(count.saturating_sub(1));
            let permuted: Vec<usize> = order
                .iter()
                .chain(std::iter::once(&count.saturating_sub(1)))
                .take(count)
                .map(|&k| succ[k])
                .collect();
            *succ = permuted;
        }
        let mut used = vec![0usize; n_chars];
        let mut idx = 0;
        let mut row = Vec::with_capacity(len);
        row.push(codes[0]);
        for _ in 1..len {
            let c = codes[idx];
            idx = next[c][used[c]];
            used[c] += 1;
            row.push(codes[idx]);
        }
        out.push(row);
    }
    out
}

/// The letter code of each column of a one-hot `[A, L]` sequence: the first largest value's
/// row, and `A` for an unknown letter (an all-zero column), as tangermeme reads it
/// (`X.max(dim=1)` with zero maxima set to `len(alphabet)`).
fn letter_codes<F: Float>(seq: ArrayView2<'_, F>, what: &str) -> Result<Vec<usize>> {
    let a = seq.nrows();
    seq.columns()
        .into_iter()
        .enumerate()
        .map(|(i, col)| {
            let mut code = a;
            for (c, &v) in col.iter().enumerate() {
                if v == F::one() {
                    if code != a {
                        return Err(not_one_hot(what, i));
                    }
                    code = c;
                } else if v != F::zero() {
                    return Err(not_one_hot(what, i));
                }
            }
            Ok(code)
        })
        .collect()
}

fn not_one_hot(what: &str, column: usize) -> Error {
    Error::InvalidParameter {
        rule: "dinucleotide_shuffle",
        reason: format!("{what}: position {column} is not one-hot (one 1 and zeros, or all zeros for N)"),
    }
}

/// Checks `x` `[N, A, L]` and returns its letter codes per sequence.
fn codes_of<F: Float>(x: &ArrayD<F>) -> Result<(Vec<Vec<usize>>, usize, usize)> {
    let x3 = x.view().into_dimensionality::<Ix3>().map_err(|_| Error::Rank {
        what: "dinucleotide_shuffle input ([N, A, L])".into(),
        expected: 3,
        got: x.ndim(),
        shape: x.shape().to_vec(),
    })?;
    let (n, a, l) = x3.dim();
    if n == 0 || a == 0 {
        return Err(Error::EmptyBatch);
    }
    let codes = (0..n)
        .map(|s| letter_codes(x3.index_axis(Axis(0), s), &format!("sequence {s}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((codes, a, l))
}

/// tangermeme's seed for a sequence: `random_state + offset` cast to a 32-bit integer
/// (`_random_states`: `astype(int64).astype(int32)`), which numba's `numpy.random.seed`
/// takes as its 32-bit pattern.
fn seed32(seed: i64, offset: usize) -> u32 {
    seed.wrapping_add(offset as i64) as u32
}

fn one_hot<F: Float>(rows: &[Vec<Vec<usize>>], a: usize, l: usize) -> ArrayD<F> {
    let r = rows.first().map_or(0, Vec::len);
    Array4::from_shape_fn((rows.len(), r, a, l), |(s, k, c, i)| {
        if rows[s][k][i] == c {
            F::one()
        } else {
            F::zero()
        }
    })
    .into_dyn()
}

/// `n` dinucleotide shuffles of each one-hot sequence of `x` `[N, A, L]`: `[N, n, A, L]`,
/// the same as tangermeme 1.6.0's `dinucleotide_shuffle(X, n=n, random_state=seed,
/// allow_N=True)` (bit for bit: the same Mersenne Twister stream and the same draws).
///
/// Every shuffle keeps the first and the last letter and the count of every dinucleotide
/// (an Eulerian walk through the letters' successors, after Altschul & Erickson as in
/// kundajelab's `dinuc_shuffle`). Sequence i is shuffled with the generator seeded with
/// `seed + i` (wrapped to 32 bits as tangermeme does) and its n shuffles follow one another
/// in that stream, so they depend on its position in the batch. An unknown letter, an
/// all-zero column, is shuffled as a letter of its own (tangermeme's `allow_N=True`).
///
/// Unlike tangermeme, identical shuffles (a sequence with a single Eulerian path, such as a
/// homopolymer) are returned rather than refused with an error.
///
/// # Errors
/// [`Error::Rank`] unless `x` is `[N, A, L]`; [`Error::EmptyBatch`] for no sequence or no
/// letter; [`Error::InvalidParameter`] for a column that is neither one-hot nor all zero.
///
/// # Example
/// ```
/// use ndarray::{Array3, Axis};
/// use relevance::genomics::dinucleotide_shuffle;
/// # fn main() -> relevance::Result<()> {
/// let bases = [0, 1, 2, 3, 0, 2, 1, 1, 3, 0];
/// let x = Array3::from_shape_fn((1, 4, 10), |(_, c, l)| f64::from(u8::from(bases[l] == c))).into_dyn();
/// let refs = dinucleotide_shuffle(&x, 3, 0)?; // [1, 3, 4, 10]
/// assert_eq!(refs.shape(), &[1, 3, 4, 10]);
/// assert_eq!(refs[[0, 2, 0, 0]], 1.0); // the first letter (A) stays
/// # Ok(()) }
/// ```
pub fn dinucleotide_shuffle<F: Float>(x: &ArrayD<F>, n: usize, seed: i64) -> Result<ArrayD<F>> {
    let (codes, a, l) = codes_of(x)?;
    let rows: Vec<Vec<Vec<usize>>> = codes
        .iter()
        .enumerate()
        .map(|(s, c)| shuffle_codes(c, a + 1, n, seed32(seed, s)))
        .collect();
    Ok(one_hot(&rows, a, l))
}

/// The references tangermeme 1.6.0's `deep_lift_shap(model, X, n_shuffles=n,
/// random_state=seed)` draws: reference k of every sequence is its single dinucleotide
/// shuffle with the generator seeded with `seed + k` (`dinucleotide_shuffle(X_i, n=1,
/// random_state=seed + k)`), so the references do not depend on the batch. `[N, n, A, L]`.
///
/// Unknown letters (all-zero columns) are shuffled as a letter of their own, as
/// [`dinucleotide_shuffle`] does; tangermeme's `deep_lift_shap` refuses them instead (it
/// calls `dinucleotide_shuffle` without `allow_N=True`).
///
/// # Errors
/// As [`dinucleotide_shuffle`].
pub fn shuffled_references<F: Float>(x: &ArrayD<F>, n: usize, seed: i64) -> Result<ArrayD<F>> {
    let (codes, a, l) = codes_of(x)?;
    let rows: Vec<Vec<Vec<usize>>> = codes
        .iter()
        .map(|c| {
            (0..n)
                .map(|k| {
                    shuffle_codes(c, a + 1, 1, seed32(seed, k))
                        .pop()
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    Ok(one_hot(&rows, a, l))
}

/// How [`deep_lift_shap_shuffled`] draws its references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShuffleOptions {
    /// References per sequence (tangermeme's `n_shuffles`, default 20).
    pub n_shuffles: usize,
    /// The base seed (tangermeme's `random_state`; default 0): reference k comes from seed
    /// `seed + k`.
    pub seed: i64,
}

impl Default for ShuffleOptions {
    fn default() -> Self {
        Self {
            n_shuffles: 20,
            seed: 0,
        }
    }
}

impl ShuffleOptions {
    /// `n_shuffles` references per sequence from base seed `seed`.
    pub fn new(n_shuffles: usize, seed: i64) -> Self {
        Self { n_shuffles, seed }
    }
}

/// [`deep_lift_shap`] against dinucleotide shuffles of each sequence, drawn as
/// [`shuffled_references`] draws them: tangermeme 1.6.0's `deep_lift_shap(model, X,
/// n_shuffles=…, random_state=seed)` with its default `references=dinucleotide_shuffle`.
/// The attributions are averaged over the references as [`deep_lift_shap`] does.
///
/// # Errors
/// [`Error::EmptyBatch`] for `n_shuffles` = 0; those of [`shuffled_references`] and
/// [`deep_lift_shap`].
///
/// # Example
/// ```
/// use ndarray::Array3;
/// use relevance::genomics::{deep_lift_shap_shuffled, ShuffleOptions};
/// use relevance::{AvgPool1d, Conv1d, Conv1dConfig, Flatten, Layer, Network, Relu, Target};
/// # fn main() -> relevance::Result<()> {
/// let w = Array3::from_shape_fn((2, 4, 3), |(o, c, k)| ((o + 2 * c + k) % 5) as f64 - 2.0);
/// let net = Network::<f64>::new(&[4, 12], vec![
///     Box::new(Conv1d::new(w, None, Conv1dConfig::default().same())?) as Box<dyn Layer<f64>>,
///     Box::new(Relu),
///     Box::new(AvgPool1d::global()),
///     Box::new(Flatten),
/// ])?;
/// let bases = [0, 1, 2, 3, 0, 2, 1, 1, 3, 0, 2, 2];
/// let x = Array3::from_shape_fn((1, 4, 12), |(_, c, l)| f64::from(u8::from(bases[l] == c))).into_dyn();
/// let r = deep_lift_shap_shuffled(&net, &x, &Target::Class(1), ShuffleOptions::new(5, 7))?;
/// assert_eq!(r.pair_deltas.shape(), &[1, 5]);
/// assert!(r.gap[0].abs() < 1e-12);
/// # Ok(()) }
/// ```
pub fn deep_lift_shap_shuffled<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    target: &Target<F>,
    options: ShuffleOptions,
) -> Result<SequenceAttribution<F>> {
    if options.n_shuffles == 0 {
        return Err(Error::EmptyBatch);
    }
    let references = shuffled_references(x, options.n_shuffles, options.seed)?;
    deep_lift_shap(net, x, &references, target)
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    #[test]
    fn mt19937_matches_the_reference_stream() {
        // init_genrand(5489): the first output of the reference MT19937 is 3499211612
        let mut rng = Mt19937::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
    }
}

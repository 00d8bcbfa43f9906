//! Synthetic vectors: a small deterministic random generator, uniform random unit vectors, and
//! photo-like vectors and queries shaped as CLIP embeddings are (a shared mean, a low-dimensional
//! semantic subspace, events of similar shots).

/// xorshift64*: fast, deterministic, good enough for synthetic data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Approximately standard normal (sum of four uniforms, rescaled).
    pub(crate) fn normal(&mut self) -> f32 {
        let x = self.next();
        let s = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48);
        (s as f32 / 65535.0 - 2.0) * 1.732_050_8
    }
}

/// `n` random unit vectors of `dim` dimensions (uniform on the sphere), row after row.
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0f32; n * dim];
    for row in out.chunks_exact_mut(dim) {
        for x in row.iter_mut() {
            *x = rng.normal();
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

/// `n` photo-like unit vectors, row after row. CLIP image embeddings are nothing like uniform
/// random vectors: they share a mean direction (unrelated photos sit near cosine 0.5), vary mostly
/// in a low-dimensional semantic subspace, and come in events — bursts of similar shots. Here:
/// `mean + semantic + noise`, the semantic part a point of a 64-d latent space (decaying spectrum)
/// drawn around its event's centre (events of ~20 photos), the noise isotropic.
pub fn photo_like_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let space = Semantic::new(dim, seed);
    let mut rng = Rng::new(seed ^ 0xE7E7);
    let mut out = vec![0f32; n * dim];
    let mut centre = vec![0f32; LATENT];
    for (i, row) in out.chunks_exact_mut(dim).enumerate() {
        if i == 0 || rng.uniform() < 1.0 / 20.0 {
            centre.iter_mut().for_each(|c| *c = rng.normal());
        }
        let tau = 0.35f32;
        let z: Vec<f32> = centre
            .iter()
            .map(|c| (c + tau * rng.normal()) / (1.0 + tau * tau).sqrt())
            .collect();
        space.embed(&space.image_mean, &z, &mut rng, row);
    }
    out
}

/// `n` query vectors for [`photo_like_vectors`] of the same seed: a fresh semantic point each,
/// around another mean (text embeddings sit apart from image embeddings in CLIP).
pub fn photo_like_queries(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let space = Semantic::new(dim, seed);
    let mut rng = Rng::new(seed ^ 0x7E57);
    let mut out = vec![0f32; n * dim];
    for row in out.chunks_exact_mut(dim) {
        let z: Vec<f32> = (0..LATENT).map(|_| rng.normal()).collect();
        space.embed(&space.text_mean, &z, &mut rng, row);
    }
    out
}

const LATENT: usize = 64;

/// The shared structure of photo-like vectors: means and a semantic basis.
struct Semantic {
    image_mean: Vec<f32>,
    text_mean: Vec<f32>,
    /// LATENT directions, each scaled by its standard deviation.
    basis: Vec<Vec<f32>>,
    dim: usize,
}

impl Semantic {
    fn new(dim: usize, seed: u64) -> Self {
        let unit = |s: u64| random_unit_vectors(1, dim, s);
        // Spectrum σ_j ∝ 1/√(j+1), scaled so the semantic part has variance 0.8 (mean 1, noise 0.2).
        let raw: Vec<f32> = (0..LATENT).map(|j| 1.0 / ((j + 1) as f32).sqrt()).collect();
        let total: f32 = raw.iter().map(|s| s * s).sum();
        let basis = (0..LATENT)
            .map(|j| {
                let s = raw[j] * (0.8 / total).sqrt();
                unit(seed ^ (0x1000 + j as u64))
                    .into_iter()
                    .map(|x| x * s)
                    .collect()
            })
            .collect();
        Semantic {
            image_mean: unit(seed ^ 0x11),
            text_mean: unit(seed ^ 0x22),
            basis,
            dim,
        }
    }

    fn embed(&self, mean: &[f32], z: &[f32], rng: &mut Rng, row: &mut [f32]) {
        let noise = (0.2f32 / self.dim as f32).sqrt();
        for (k, x) in row.iter_mut().enumerate() {
            *x = mean[k] + noise * rng.normal();
        }
        for (b, zj) in self.basis.iter().zip(z) {
            for (x, bk) in row.iter_mut().zip(b) {
                *x += zj * bk;
            }
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_unit_vectors_are_unit() {
        let v = random_unit_vectors(10, 32, 1);
        for r in v.chunks_exact(32) {
            let n: f32 = r.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }
}

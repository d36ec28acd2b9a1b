"""Similarity of two layers' representations: CCA, SVCCA, PWCCA and (debiased) CKA.

Every measure compares activations shaped ``(n_datapoints, n_features)``: the same ``n``
datapoints (rows) pushed through two layers (or one layer before and after the inner loop). The
inputs are numpy arrays or torch tensors; tensors stay on their device (CUDA included) and all
the math is torch, so it runs on a GPU when the activations live there. The computation is in
float64 unless ``dtype=`` says otherwise, and every measure returns a Python float.

Conventions
-----------
* Rows are centred before anything else (every measure here is translation invariant).
* **CCA** (:func:`cca`, :func:`cca_coefficients`) is the mean of *all* canonical correlations
  between the two centred column spaces: singular values of ``Qx^T Qy`` for orthonormal bases
  ``Qx``, ``Qy``, clipped to [0, 1]. A *dead* (constant) neuron and any linearly dependent
  direction is dropped first (columns are normalised, then directions whose singular value is
  below ``rtol`` times the largest are null; default ``rtol = max(n, d) * eps(dtype)``), so the
  mean is over ``min(rank_x, rank_y)`` coefficients. This is the "mean CCA similarity" of
  Raghu et al. (2017, SVCCA, arXiv:1706.05806; NeurIPS 2017), *not* google/svcca's ``"mean"``
  key, which first truncates at 98 % of the sum of the coefficients. CCA is invariant to any
  invertible linear map of either side (so to column scaling: 1e-8 and 1e8 columns are fine).
* **CCA needs more datapoints than dimensions.** After centring, ``n`` points span at most
  ``n - 1`` dimensions; when ``rank_x + rank_y > n - 1`` the two subspaces must share
  ``rank_x + rank_y - (n - 1)`` directions, whatever the data, and that many coefficients are 1
  (with ``n <= d`` *every* coefficient is 1). CCA, SVCCA and PWCCA refuse such input with an
  :class:`~repsim.errors.InputError` (use CKA, or more datapoints, e.g.
  ``conv_to_2d(a, "channels")``). The ranks are those after dropping null directions (for SVCCA:
  the directions kept).
* **SVCCA** (:func:`svcca`, Raghu et al. 2017): centre, SVD each side, keep the fewest
  directions that explain at least ``keep`` of the variance (sum of squared singular values),
  then mean CCA of the kept directions.
* **PWCCA** (:func:`pwcca`, Morcos, Raghu & Bengio 2018, "Insights on representational
  similarity in neural networks with canonical correlation", NeurIPS): the canonical
  correlations ``rho_i`` weighted by how much of **x** its canonical variates account for:
  ``alpha_i = sum_j |<h_i, x_j>|`` with ``h_i`` the i-th unit-norm canonical variate of x (true
  variates ``Xc w_i``) and ``x_j`` the j-th centred neuron of x, normalised to sum to 1. It is
  *not* symmetric: ``pwcca(x, y) != pwcca(y, x)`` in general; x is the side whose structure
  weights the coefficients.
* **Linear CKA** (:func:`linear_cka`, Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of
  neural network representations revisited", ICML): ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F
  ||Yc^T Yc||_F)``, computed in feature space (``O(n d^2)``) when that is cheaper and in Gram
  space (``O(n^2 d)``) when ``d >> n``. ``debiased=True`` replaces HSIC by its unbiased
  estimator (Song, Smola, Gretton, Bedo & Borgwardt 2012, "Feature selection via dependence
  maximization", JMLR), written in feature space where possible; in Gram space it is the
  Szekely-Rizzo U-centring. Debiased CKA needs n >= 4 and may be slightly negative.
* **RBF CKA** (:func:`rbf_cka`): Gaussian kernel ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``.
  With ``sigma=None`` each side gets its own bandwidth
  ``sigma = sigma_frac * sqrt(median_{i<j} ||a_i - a_j||^2)`` -- Kornblith et al.'s notebook
  convention (``threshold`` there is ``sigma_frac`` here), except that the median is over the
  distinct pairs only (their notebook also counts the n zero distances on the diagonal).
  ``sigma=(sigma_x, sigma_y)`` gives each side its own bandwidth. Each side's kernel is kept as
  its upper triangle (one symmetric rank-k product), the median is selected exactly (a sampled
  bracket and one counting pass, no sort), and ``<HKH, HLH>`` comes from one pass over the two
  kernels, ``sum K*L - 2/n s_K.s_L + S_K S_L / n^2`` (row sums ``s``, totals ``S``), with each
  kernel shifted by its value at the mean distance so that the sum does not cancel; neither
  centred matrix is formed.
* **Numerics.** A dead neuron is a column whose centred sum of squares is below
  ``n * (100 ulp of its mean)^2``. CCA-type measures whiten a layer from its Gram matrix (the
  same ``n d^2`` products CKA needs) when its column-normalised covariance is well conditioned
  (smallest/largest eigenvalue >= ``10 sqrt(eps)``, about 1.5e-7 in float64: the error is then
  ~``eps * condition``); otherwise, and whenever ``rtol`` is given, the basis comes from a QR
  factorisation, rank-revealed by the SVD of R (error ~``eps * sqrt(condition)``). NaN or inf
  anywhere in an input shows up in its column means, which is how it is detected. A float64
  layer whose column offsets are moderate (``n mean^2 <= 64 x`` its centred sum of squares)
  is never copied: products are taken on the raw data and centred by a rank-one correction
  (``X^T Y - n mu_x mu_y^T``), at a cost of at most ~1.8 digits, which the choice between the
  Gram and QR routes takes into account; other layers are centred first. Float32 input is
  converted (and centred) once, so it gets the float64 answer unless ``dtype=torch.float32``.
* Convolutional activations ``(N, C, H, W)`` go through :func:`conv_to_2d` first: by default
  ``(N*H*W, C)`` -- channels are neurons and every spatial position is a datapoint, as in the
  paper.

:func:`similarity_matrix` compares every layer of one model with every layer of another and
does the per-layer work (centring, bases, self terms) once per layer. :class:`StreamingLinearCKA`
and :class:`StreamingCCA` accumulate exact sufficient statistics over minibatches (``O(d^2)``
memory) and equal the full-batch values to ~1e-10 in float64.
"""

from repsim.similarity.cca import truncated_mean
from repsim.similarity.conv import CONV_MODES, conv_to_2d
from repsim.similarity.measures import (
    MEASURES,
    cca,
    cca_98,
    cca_coefficients,
    chance_level,
    get_measure,
    linear_cka,
    pwcca,
    rbf_cka,
    svcca,
)
from repsim.similarity.registry import REGISTRY, Measure, SimilarityMatrix, similarity_matrix
from repsim.similarity.streaming import StreamingCCA, StreamingLinearCKA

__all__ = [
    "CONV_MODES",
    "MEASURES",
    "REGISTRY",
    "Measure",
    "SimilarityMatrix",
    "StreamingCCA",
    "StreamingLinearCKA",
    "cca",
    "cca_98",
    "cca_coefficients",
    "chance_level",
    "conv_to_2d",
    "get_measure",
    "linear_cka",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
    "truncated_mean",
]

"""Variational autoencoders: 1-D spectra (MLP and convolutional), images, and the nested conditions<->micrograph VAE.

The 1-D defaults follow a published VAE-vs-CVAE augmentation study on Raman spectra of solutions: encoder ``in ->
256 -> 2x128`` (mean, log-variance), decoder ``128 (+ conditions) -> 256 -> out``, loss ``MSE + beta * KL``.  A
conditional VAE (CVAE) is the same network whose decoder (and, here, encoder) also receives the conditions (the
regression targets), so spectra can be generated at chosen conditions.

The nested VAE (after a published conditions <-> swelling-micrograph model) has four parts: a micrograph encoder
(convolutions + pooling -> dense code ``Z``), a parameter encoder ``Z -> conditions``, a parameter decoder
``conditions -> Z`` and a micrograph decoder ``Z -> image``.  :class:`NestedVAE` implements it variationally: the
parameter decoder gives a *conditional prior* ``p(Z | c) = N(mu(c), sigma(c))`` so one condition yields many
different micrographs; the loss is ``recon + beta * KL(q(Z|x) || p(Z|c)) + gamma * (condition loss of the parameter
encoder)``.

All models return ``dict(recon=..., mu=..., logvar=..., z=...)`` from ``forward`` and offer ``encode``,
``decode``, ``sample(n, cond=None)``; :func:`vae_loss` gives the loss pieces.  ``MODELS`` maps a name to its
constructor.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VAE", "CVAE", "ConvVAE1D", "ConvCVAE1D", "ImageVAE", "ImageCVAE", "NestedVAE", "DomainVAE",
           "vae_loss", "kl_normal", "mmd_rbf", "MODELS", "build"]


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_normal(mu, logvar, mu_p=None, logvar_p=None) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(mu_p, exp(logvar_p))) summed over the latent, averaged over the batch
    (prior N(0, 1) when ``mu_p`` is None)."""
    if mu_p is None:
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    else:
        kl = 0.5 * (logvar_p - logvar + (logvar.exp() + (mu - mu_p).pow(2)) / logvar_p.exp() - 1)
    return kl.sum(dim=1).mean()


def vae_loss(out: dict, x: torch.Tensor, beta: float = 1.0) -> dict:
    """``MSE + beta * KL`` (MSE averaged over samples and channels, as in the reference Keras implementation of
    that augmentation study)."""
    mse = F.mse_loss(out["recon"], x)
    kl = kl_normal(out["mu"], out["logvar"], out.get("mu_p"), out.get("logvar_p"))
    # KL is per sample summed over latent units; divide by the number of input values so beta is comparable
    # with the per-value MSE whatever the input size
    kl_scaled = kl / float(x[0].numel())
    return {"loss": mse + beta * kl_scaled, "mse": mse, "kl": kl}


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, scales=(0.25, 1.0, 4.0)) -> torch.Tensor:
    """Maximum mean discrepancy (biased, multi-scale Gaussian kernel) between two samples of vectors."""
    d = a.shape[1]
    x = torch.cat([a, b])
    d2 = torch.cdist(x, x).pow(2)
    k = sum(torch.exp(-d2 / (2 * s * s * d)) for s in scales)
    n = a.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def _mlp(sizes, act=nn.GELU, last_act=False):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(act())
    return nn.Sequential(*layers)


class _VAEBase(nn.Module):
    n_cond = 0
    latent = 0

    def _check_cond(self, cond):
        if self.n_cond and cond is None:
            raise ValueError(f"{type(self).__name__}: conditional model needs `cond` of width {self.n_cond}")
        if cond is not None and cond.shape[-1] != self.n_cond:
            raise ValueError(f"{type(self).__name__}: cond has width {cond.shape[-1]}, expected {self.n_cond}")

    def forward(self, x, cond=None):
        self._check_cond(cond)
        mu, logvar = self.encode(x, cond)
        z = reparameterize(mu, logvar) if self.training else mu
        return {"recon": self.decode(z, cond), "mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def sample(self, n: int, cond=None, temperature: float = 1.0):
        """``n`` new samples from the prior (at conditions ``cond`` (n, n_cond) for conditional models)."""
        self._check_cond(cond)
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent, device=dev) * temperature
        return self.decode(z, None if cond is None else cond.to(dev))


class VAE(_VAEBase):
    """MLP VAE: ``n_in -> hidden -> 2 x latent``; decoder ``latent (+ n_cond) -> hidden -> n_in``.
    ``hidden`` may be an int or a list of widths."""

    def __init__(self, n_in: int, latent: int = 128, hidden=256, n_cond: int = 0):
        super().__init__()
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        self.n_in, self.latent, self.n_cond = int(n_in), int(latent), int(n_cond)
        self.enc = _mlp([n_in + n_cond] + hidden, last_act=True)
        self.mu = nn.Linear(hidden[-1], latent)
        self.logvar = nn.Linear(hidden[-1], latent)
        self.dec = _mlp([latent + n_cond] + hidden[::-1] + [n_in])

    def encode(self, x, cond=None):
        h = x.flatten(1)
        if self.n_cond:
            h = torch.cat([h, cond], dim=1)
        h = self.enc(h)
        return self.mu(h), self.logvar(h).clamp(-12, 8)

    def decode(self, z, cond=None):
        if self.n_cond:
            z = torch.cat([z, cond], dim=1)
        return self.dec(z)


def CVAE(n_in: int, n_cond: int, latent: int = 128, hidden=256) -> VAE:
    """Conditional MLP VAE (decoder input ``latent + n_cond``)."""
    if n_cond <= 0:
        raise ValueError(f"CVAE: n_cond must be positive, got {n_cond}")
    return VAE(n_in, latent=latent, hidden=hidden, n_cond=n_cond)


class ConvVAE1D(_VAEBase):
    """Convolutional 1-D VAE/CVAE: strided Conv1d stack -> dense -> (mu, logvar); decoder dense -> upsampling
    Conv1d stack; the output is interpolated back to ``n_in`` points."""

    def __init__(self, n_in: int, latent: int = 32, channels=(16, 32, 64), hidden: int = 256, n_cond: int = 0,
                 kernel: int = 7):
        super().__init__()
        self.n_in, self.latent, self.n_cond = int(n_in), int(latent), int(n_cond)
        ch = [1] + list(channels)
        layers = []
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv1d(a, b, kernel, stride=2, padding=kernel // 2), nn.GELU()]
        self.conv = nn.Sequential(*layers)
        self.L0 = math.ceil(n_in / 2 ** len(channels))
        self.enc = nn.Sequential(nn.Linear(ch[-1] * self.L0 + n_cond, hidden), nn.GELU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dec_in = nn.Sequential(nn.Linear(latent + n_cond, hidden), nn.GELU(),
                                    nn.Linear(hidden, ch[-1] * self.L0), nn.GELU())
        up = []
        rch = ch[::-1]
        for i, (a, b) in enumerate(zip(rch[:-1], rch[1:])):
            up += [nn.Upsample(scale_factor=2, mode="linear", align_corners=False),
                   nn.Conv1d(a, b if i < len(rch) - 2 else 16, kernel, padding=kernel // 2), nn.GELU()]
        self.up = nn.Sequential(*up)
        self.out = nn.Conv1d(16, 1, kernel, padding=kernel // 2)
        self._ch = ch[-1]

    def encode(self, x, cond=None):
        h = self.conv(x.reshape(x.shape[0], 1, -1))
        if h.shape[-1] != self.L0:
            h = F.adaptive_avg_pool1d(h, self.L0)
        h = h.flatten(1)
        if self.n_cond:
            h = torch.cat([h, cond], dim=1)
        h = self.enc(h)
        return self.mu(h), self.logvar(h).clamp(-12, 8)

    def decode(self, z, cond=None):
        if self.n_cond:
            z = torch.cat([z, cond], dim=1)
        h = self.dec_in(z).reshape(z.shape[0], self._ch, self.L0)
        h = self.out(self.up(h))
        if h.shape[-1] != self.n_in:
            h = F.interpolate(h, size=self.n_in, mode="linear", align_corners=False)
        return h[:, 0]


def ConvCVAE1D(n_in: int, n_cond: int, **kw) -> ConvVAE1D:
    if n_cond <= 0:
        raise ValueError(f"ConvCVAE1D: n_cond must be positive, got {n_cond}")
    return ConvVAE1D(n_in, n_cond=n_cond, **kw)


class _ImageCodec(nn.Module):
    """Conv2d encoder (stride-2 blocks) to a feature vector and the mirrored decoder from a vector."""

    def __init__(self, size: int, in_ch: int, out_ch: int, channels, code_in: int, feat: int):
        super().__init__()
        if size % 2 ** len(channels):
            raise ValueError(f"image size {size} must be divisible by 2**{len(channels)} (one halving per block)")
        self.s0 = size // 2 ** len(channels)
        ch = [in_ch] + list(channels)
        enc = []
        for a, b in zip(ch[:-1], ch[1:]):  # one strided 4x4 convolution per halving (cheap at 128^2 and up)
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GELU()]
        self.enc = nn.Sequential(*enc, nn.Flatten(), nn.Linear(ch[-1] * self.s0 ** 2, feat), nn.GELU())
        rch = list(channels)[::-1]
        self.dec_in = nn.Sequential(nn.Linear(code_in, rch[0] * self.s0 ** 2), nn.GELU())
        dec = []
        last = max(8, out_ch)
        for a, b in zip(rch, rch[1:] + [last]):
            dec += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.GELU()]
        self.dec = nn.Sequential(*dec, nn.Conv2d(last, out_ch, 3, padding=1))
        self._c0 = rch[0]

    def decode(self, code):
        return self.dec(self.dec_in(code).reshape(code.shape[0], self._c0, self.s0, self.s0))


class ImageVAE(_VAEBase):
    """Convolutional image VAE/CVAE on (B, H, W) or (B, C, H, W) square images of side ``size``."""

    def __init__(self, size: int = 128, latent: int = 32, channels=(16, 32, 64, 64), in_ch: int = 1,
                 hidden: int = 256, n_cond: int = 0):
        super().__init__()
        self.size, self.latent, self.n_cond, self.in_ch = int(size), int(latent), int(n_cond), int(in_ch)
        self.codec = _ImageCodec(size, in_ch, in_ch, channels, latent + n_cond, hidden)
        self.mu = nn.Linear(hidden + n_cond, latent)
        self.logvar = nn.Linear(hidden + n_cond, latent)

    def _img(self, x):
        return x.unsqueeze(1) if x.dim() == 3 else x

    def encode(self, x, cond=None):
        h = self.codec.enc(self._img(x))
        if self.n_cond:
            h = torch.cat([h, cond], dim=1)
        return self.mu(h), self.logvar(h).clamp(-12, 8)

    def decode(self, z, cond=None):
        if self.n_cond:
            z = torch.cat([z, cond], dim=1)
        out = self.codec.decode(z)
        return out[:, 0] if self.in_ch == 1 else out

    def forward(self, x, cond=None):
        out = super().forward(x, cond)
        if out["recon"].shape != x.shape:
            out["recon"] = out["recon"].reshape(x.shape)
        return out


def ImageCVAE(size: int = 128, n_cond: int = 1, **kw) -> ImageVAE:
    if n_cond <= 0:
        raise ValueError(f"ImageCVAE: n_cond must be positive, got {n_cond}")
    return ImageVAE(size, n_cond=n_cond, **kw)


class NestedVAE(nn.Module):
    """Nested conditions <-> micrograph VAE, variational and at ``size`` >= 128 pixels, grey levels.

    * micrograph encoder ``x -> q(Z|x)`` (conv blocks with stride-2 pooling, dense ``code`` units);
    * parameter encoder ``Z -> conditions`` (``n_cont`` continuous values + ``n_classes`` logits, e.g. material);
    * parameter decoder ``conditions -> p(Z|c)`` (mean and log-variance: a conditional prior);
    * micrograph decoder ``Z -> image`` with ``out_ch`` channels (grey image, plus an optional void-mask logit
      channel used to measure the generated voids).

    ``cond`` given to :meth:`forward` is ``(B, n_cont + n_classes)``: standardised continuous conditions then a
    one-hot class.  The published model used 32 x 32 binarised images, conv 16-8-8 and a 32-unit code; pass
    ``channels=(16, 8, 8)`` for that encoder.
    """

    def __init__(self, size: int = 128, n_cont: int = 2, n_classes: int = 0, code: int = 32,
                 channels=(16, 32, 64, 64), in_ch: int = 1, out_ch: int | None = None, hidden: int = 256,
                 param_hidden: int = 64):
        super().__init__()
        self.size, self.code, self.n_cont, self.n_classes = int(size), int(code), int(n_cont), int(n_classes)
        self.n_cond = self.n_cont + self.n_classes
        if self.n_cond <= 0:
            raise ValueError("NestedVAE: needs at least one condition (n_cont + n_classes > 0)")
        self.in_ch = int(in_ch)
        self.out_ch = int(out_ch or in_ch)
        self.codec = _ImageCodec(size, in_ch, self.out_ch, channels, code, hidden)
        self.mu = nn.Linear(hidden, code)
        self.logvar = nn.Linear(hidden, code)
        self.param_enc = _mlp([code, param_hidden, param_hidden, self.n_cond])
        self.param_dec = _mlp([self.n_cond, param_hidden, param_hidden, 2 * code])
        self.latent = code

    def _img(self, x):
        return x.unsqueeze(1) if x.dim() == 3 else x

    def encode(self, x):
        h = self.codec.enc(self._img(x))
        return self.mu(h), self.logvar(h).clamp(-12, 8)

    def prior(self, cond):
        h = self.param_dec(cond)
        return h[:, :self.code], h[:, self.code:].clamp(-12, 8)

    def decode(self, z):
        return self.codec.decode(z)

    def conditions(self, z):
        """Parameter encoder: ``(continuous (B, n_cont), class logits (B, n_classes))``."""
        h = self.param_enc(z)
        return h[:, :self.n_cont], h[:, self.n_cont:]

    def forward(self, x, cond):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar) if self.training else mu
        mu_p, logvar_p = self.prior(cond)
        cont, logits = self.conditions(z)
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z, "mu_p": mu_p, "logvar_p": logvar_p,
                "cont": cont, "logits": logits}

    @torch.no_grad()
    def generate(self, cond, temperature: float = 1.0):
        """Micrographs (B, out_ch, size, size) drawn at conditions ``cond``."""
        mu_p, logvar_p = self.prior(cond)
        z = mu_p + torch.randn_like(mu_p) * torch.exp(0.5 * logvar_p) * temperature
        return self.decode(z)

    @torch.no_grad()
    def infer(self, x):
        """Conditions recovered from micrographs: ``(continuous, class logits)``."""
        mu, _ = self.encode(x)
        return self.conditions(mu)

    def loss(self, out, x, cond, beta: float = 1.0, gamma: float = 1.0, mask=None, mask_weight: float = 1.0):
        """``MSE(grey) [+ BCE(mask channel)] + beta * KL(q(Z|x) || p(Z|c)) / n_pixels + gamma * condition loss``."""
        img = self._img(x)
        rec = out["recon"]
        mse = F.mse_loss(rec[:, :self.in_ch], img)
        bce = torch.zeros((), device=x.device)
        if mask is not None:
            bce = F.binary_cross_entropy_with_logits(rec[:, self.in_ch], mask.float())
        kl = kl_normal(out["mu"], out["logvar"], out["mu_p"], out["logvar_p"])
        closs = F.mse_loss(out["cont"], cond[:, :self.n_cont]) if self.n_cont else torch.zeros((), device=x.device)
        if self.n_classes:
            closs = closs + F.cross_entropy(out["logits"], cond[:, self.n_cont:].argmax(1))
        total = mse + mask_weight * bce + beta * kl / float(img[0].numel()) + gamma * closs
        return {"loss": total, "mse": mse, "bce": bce, "kl": kl, "cond": closs}


class DomainVAE(nn.Module):
    """Shared-latent VAE with a domain-conditioned encoder and decoder (trVAE-style: Lotfollahi et al.,
    Bioinformatics 2020), used by :mod:`train.studies.adapt` to translate simulated spectra into the measured domain.

    ``arch='mlp'``: ``n_in (+domain) -> hidden -> 2 x latent``, decoder ``latent + domain -> hidden -> n_in``;
    ``arch='conv'``: the :class:`ConvVAE1D` layout with the domain one-hot as its condition.
    """

    def __init__(self, n_in: int, latent: int = 32, hidden=(512, 256), n_domains: int = 2, arch: str = "mlp"):
        super().__init__()
        self.n_domains, self.latent = int(n_domains), int(latent)
        if arch == "mlp":
            self.net = VAE(n_in, latent=latent, hidden=hidden, n_cond=n_domains)
        elif arch == "conv":
            self.net = ConvVAE1D(n_in, latent=latent, n_cond=n_domains)
        else:
            raise ValueError(f"DomainVAE: arch '{arch}' is not one of 'mlp', 'conv'")

    def onehot(self, d, n):
        dev = next(self.parameters()).device
        if isinstance(d, int):
            d = torch.full((n,), d, dtype=torch.long, device=dev)
        return F.one_hot(d.long(), self.n_domains).float()

    def encode(self, x, d):
        return self.net.encode(x, self.onehot(d, x.shape[0]))

    def decode(self, z, d):
        return self.net.decode(z, self.onehot(d, z.shape[0]))

    def forward(self, x, d):
        mu, logvar = self.encode(x, d)
        z = reparameterize(mu, logvar) if self.training else mu
        return {"recon": self.decode(z, d), "mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def translate(self, x, src: int, dst: int, residual: bool = True):
        """Move spectra from domain ``src`` to ``dst``: ``decode(z, dst)``, or with ``residual`` the input plus
        the decoder's domain difference ``x + decode(z, dst) - decode(z, src)`` (keeps the fine detail of ``x``
        that the decoder does not reproduce; the decoder's own errors cancel in the difference)."""
        mu, _ = self.encode(x, src)
        out = self.decode(mu, dst)
        if residual:
            out = x + out - self.decode(mu, src)
        return out


MODELS = {
    "vae": VAE,
    "cvae": CVAE,
    "conv_vae": ConvVAE1D,
    "conv_cvae": ConvCVAE1D,
    "image_vae": ImageVAE,
    "image_cvae": ImageCVAE,
    "nested_vae": NestedVAE,
    "domain_vae": DomainVAE,
}


def build(name: str, *args, **kw) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"VAE model '{name}' is unknown; expected one of {', '.join(MODELS)}")
    return MODELS[name](*args, **kw)

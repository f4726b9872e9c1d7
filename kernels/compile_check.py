"""Compile the AG-Residual Triton kernels for a CUDA arch without a GPU (CI check).

    python -m sseg.kernels.compile_check --arch 90 [--dtype bf16 fp32] [--all-configs]

Prints one line per (kernel, dtype, config) with the shared memory ptxas reports and the
launcher's estimate (``shared_memory_estimate``, which prunes configs and sizes the
persistent grids), and exits non-zero if a kernel fails to compile, no config of a kernel
fits the arch's shared memory, or the estimate is below the real figure. The backward is
compiled for the training case (V frozen: no dV) and the forward as the fused shot mean
(K = 3), next to the plain forms in ``--all-configs``. Needs Triton's bundled ``ptxas``;
must run without ``TRITON_INTERPRET``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

_ELEMENT_SIZE = {"bf16": 2, "fp16": 2, "fp32": 4}
# largest dynamic shared memory per block (bytes)
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
_INT_ARGS = ("N", "N_G", "D", "stride_v", "stride_out", "stride_dout", "stride_dv", "M_BUCKET")
_FP32_PTRS = ("g_ptr", "gw_ptr", "on_ptr", "dgw_partial_ptr")


def compile_kernel(
    kernel, dtype: str, config, arch: int, softmax: bool = True, keyframes: int = 1,
    need_dv: bool = True,
) -> int:  # fmt: skip
    """Compile one autotuned kernel config for ``sm_<arch>``; returns its shared memory."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = kernel.fn
    signature: dict[str, str] = {}
    for name in fn.arg_names:
        if name.endswith("_ptr"):
            signature[name] = "*fp32" if name in _FP32_PTRS else f"*{dtype}"
        elif name in _INT_ARGS:
            signature[name] = "i32"
        elif name == "inv_temp":
            signature[name] = "fp32"
    if "NEED_DV" in fn.arg_names:
        signature["NEED_DV"] = "constexpr"
    constants = {
        "K": keyframes,
        "NG_PAD": 32,
        "SOFTMAX": softmax,
        "PREC": "tf32x3" if dtype == "fp32" else "ieee",
        **config.kwargs,
    }
    if "NEED_DV" in fn.arg_names:
        constants["NEED_DV"] = need_dv
    signature.update(dict.fromkeys(constants, "constexpr"))
    source = ASTSource(
        fn, signature, constexprs={(fn.arg_names.index(k),): v for k, v in constants.items()}
    )
    options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    return int(compiled.metadata.shared)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, choices=sorted(SHARED_LIMIT))
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--all-configs", action="store_true", help="not only the first config")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("unset TRITON_INTERPRET: the interpreter cannot compile for a GPU")
    agr = importlib.import_module("sseg.kernels.ag_residual")
    failed = False
    # (kernel, K keyframes per output row, NEED_DV): the training forms first
    variants = [
        ("_ag_residual_forward_kernel", 3, True),
        ("_ag_residual_backward_kernel", 3, False),
    ]
    if args.all_configs:
        variants += [
            ("_ag_residual_forward_kernel", 1, True),
            ("_ag_residual_backward_kernel", 1, True),
        ]
    for name, keyframes, need_dv in variants:
        kernel = getattr(agr, name)
        backward = "backward" in name
        for dtype in args.dtype:
            fits = 0
            for config in kernel.configs if args.all_configs else kernel.configs[:1]:
                label = f"{name} K={keyframes} dV={need_dv} {dtype} {config}"
                try:
                    shared = compile_kernel(
                        kernel, dtype, config, args.arch, keyframes=keyframes, need_dv=need_dv
                    )
                except Exception as exc:  # noqa: BLE001 - report every compile failure
                    print(f"FAIL {label}: {type(exc).__name__}: {exc}")
                    failed = True
                    continue
                estimate = agr.shared_memory_estimate(config, _ELEMENT_SIZE[dtype], backward)
                ok = shared <= SHARED_LIMIT[args.arch]
                fits += ok
                status = "ok  " if ok else "big "
                if shared > estimate:
                    status, failed = "UNDER", True
                print(f"{status} {label} shared={shared} estimate={estimate}")
            failed |= fits == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

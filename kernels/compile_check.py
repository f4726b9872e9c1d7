"""Compile the AG-Residual Triton kernels for a CUDA arch without a GPU (CI check).

    python -m sseg.kernels.compile_check --arch 90 [--dtype bf16 fp32] [--all-configs]

Prints one line per (kernel, dtype, config) with the shared memory it needs and exits
non-zero if a kernel fails to compile or no config of a kernel fits the arch's shared
memory. Needs Triton's bundled ``ptxas``; must run without ``TRITON_INTERPRET``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# largest dynamic shared memory per block (bytes)
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
_INT_ARGS = ("M", "D", "stride_v", "stride_out", "stride_dout", "stride_dv")
_FP32_PTRS = ("g_ptr", "gw_ptr", "dgw_partial_ptr")


def compile_kernel(kernel, dtype: str, config, arch: int, softmax: bool = True) -> int:
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
    constants = {
        "N_G": 21,
        "NG_PAD": 32,
        "SOFTMAX": softmax,
        "PREC": "tf32x3" if dtype == "fp32" else "ieee",
        **config.kwargs,
    }
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
    for name in ("_ag_residual_forward_kernel", "_ag_residual_backward_kernel"):
        kernel = getattr(agr, name)
        for dtype in args.dtype:
            fits = 0
            for config in kernel.configs if args.all_configs else kernel.configs[:1]:
                try:
                    shared = compile_kernel(kernel, dtype, config, args.arch)
                except Exception as exc:  # noqa: BLE001 - report every compile failure
                    print(f"FAIL {name} {dtype} {config}: {type(exc).__name__}: {exc}")
                    failed = True
                    continue
                ok = shared <= SHARED_LIMIT[args.arch]
                fits += ok
                print(f"{'ok  ' if ok else 'big '} {name} {dtype} {config} shared={shared}")
            failed |= fits == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

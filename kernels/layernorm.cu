// Residual add + LayerNorm over the last axis for the CuPy backend (kernels/gpu.py).
//
// out[r, :] = (v - mean) / sqrt(var + eps) * gamma + beta, v = x[r, :] (+ residual[r, :]),
// with the biased variance and eps inside the square root, as torch and
// kernels/reference.py do. Two passes (mean, then squared deviations) rather
// than sum-of-squares, for accuracy. One warp per row; out may alias x or
// residual (each element is read and written by the same lane).

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

extern "C" __global__ void add_layernorm_f32(const float* x, const float* residual,
                                             const float* gamma, const float* beta, float* out,
                                             int rows, int cols, float eps, int has_residual)
{
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) {
        return;
    }
    const float* xr = x + row * cols;
    const float* rr = residual + row * cols;
    float* o = out + row * cols;

    float total = 0.0f;
    for (int j = lane; j < cols; j += 32) {
        total += has_residual ? xr[j] + rr[j] : xr[j];
    }
    const float mean = warp_sum(total) / (float)cols;

    float squares = 0.0f;
    for (int j = lane; j < cols; j += 32) {
        const float d = (has_residual ? xr[j] + rr[j] : xr[j]) - mean;
        squares += d * d;
    }
    const float denom = sqrtf(warp_sum(squares) / (float)cols + eps);

    for (int j = lane; j < cols; j += 32) {
        const float v = has_residual ? xr[j] + rr[j] : xr[j];
        o[j] = (v - mean) / denom * gamma[j] + beta[j];
    }
}

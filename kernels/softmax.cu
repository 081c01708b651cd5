// Masked softmax over attention scores for the CuPy backend (kernels/gpu.py).
//
// scores: [rows, cols] float32, rows = batch * heads * queries, cols = keys,
// already scaled (the backend folds the 1/sqrt(head_dim) into the matmul).
// key_mask: [batch, cols] bytes, 0 = padding; row r uses mask row
// r / rows_per_mask. Rewritten in place with probabilities.
//
// As in kernels/reference.py, a masked score becomes the most negative float32
// (not -inf): a fully masked row then has equal scores and becomes uniform
// instead of NaN. One warp per row; the whole warp leaves together when its
// row is out of range, so every shuffle has all 32 lanes.

#define NEG_FLT_MAX (-3.402823466e+38f)
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

extern "C" __global__ void masked_softmax_f32(float* scores, const unsigned char* key_mask,
                                              int rows, int cols, int rows_per_mask)
{
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) {
        return;
    }
    float* s = scores + row * cols;
    const unsigned char* keep = key_mask + (row / rows_per_mask) * cols;

    float row_max = NEG_FLT_MAX;
    for (int j = lane; j < cols; j += 32) {
        row_max = fmaxf(row_max, keep[j] ? s[j] : NEG_FLT_MAX);
    }
    row_max = warp_max(row_max);

    float total = 0.0f;
    for (int j = lane; j < cols; j += 32) {
        total += expf((keep[j] ? s[j] : NEG_FLT_MAX) - row_max);
    }
    total = warp_sum(total);

    for (int j = lane; j < cols; j += 32) {
        s[j] = expf((keep[j] ? s[j] : NEG_FLT_MAX) - row_max) / total;
    }
}

// Fused bias + activation for the CuPy backend (kernels/gpu.py).
//
// y[i] = act(x[i] + bias[i % cols]) over a row-major [rows, cols] float32
// matrix of n = rows * cols elements; x and y may be the same buffer (the
// backend applies it in place to a fresh matmul output). The formulas follow
// kernels/reference.py: "gelu" is the exact erf form, "gelu_new" the tanh
// approximation. Self-contained (no #include) so NVRTC and nvcc both take it.

// Activation codes: ACT_NONE and ACT_CODES in kernels/reference.py mirror these (a test checks).
#define ACT_NONE 0
#define ACT_GELU 1
#define ACT_GELU_NEW 2
#define ACT_RELU 3
#define ACT_SILU 4

__device__ __forceinline__ float apply_activation(float v, int act)
{
    switch (act) {
    case ACT_GELU:  // x * Phi(x) = x/2 * (1 + erf(x / sqrt(2)))
        return v * 0.5f * (1.0f + erff(v * 0.70710678118654752f));
    case ACT_GELU_NEW:  // x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case ACT_RELU:  // written so that NaN stays NaN, as np.maximum does
        return v < 0.0f ? 0.0f : v;
    case ACT_SILU:  // x * sigmoid(x)
        return v / (1.0f + expf(-v));
    default:
        return v;
    }
}

extern "C" __global__ void bias_act_f32(const float* x, const float* bias, float* y,
                                        unsigned int n, unsigned int cols, int act, int has_bias)
{
    // Grid-stride loop: any grid size covers all n elements (n < 2^31, checked by the caller).
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = x[i];
        if (has_bias) {
            v += bias[i % cols];
        }
        y[i] = apply_activation(v, act);
    }
}

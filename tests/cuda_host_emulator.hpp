// Runs the CUDA C kernels of kernels/*.cu on the CPU, for tests on machines without a GPU.
//
// tests/gpu_emulation.py compiles each .cu file with g++ after this header and
// a generated launcher per kernel. Every GPU thread of a block is a host
// thread: warp shuffles meet at a per-warp barrier, __syncthreads at a block
// barrier, and blocks run one after another (so __shared__ can be static).
// What it checks is the kernel's own logic (indexing, reductions, masking,
// formulas); timing, memory coalescing and the GPU's math library are not
// emulated (host erff/expf/tanhf stand in for CUDA's, within a few ulps).

#include <math.h>

#include <atomic>
#include <barrier>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

namespace emu {

struct Warp {
    std::barrier<> meet{32};
    std::atomic<int> exited{0};
    float f[32];
    int i[32];
    unsigned int u[32];
};

inline std::atomic<int> errors{0};  // a shuffle reached with lanes missing: undefined on a GPU
thread_local dim3 thread_idx, block_idx;
thread_local Warp* warp = nullptr;
thread_local int lane = 0;
thread_local std::barrier<>* block_barrier = nullptr;
inline dim3 block_dim, grid_dim;

template <class T>
T exchange(T (&slots)[32], T value, int source_lane)
{
    slots[lane] = value;
    warp->meet.arrive_and_wait();
    if (warp->exited.load() != 0) {
        errors.fetch_add(1);
    }
    T result = slots[source_lane & 31];
    warp->meet.arrive_and_wait();
    return result;
}

// Runs body() once per thread of every block. Blocks must be whole warps.
template <class Body>
int launch(dim3 grid, dim3 block, Body body)
{
    const unsigned int threads = block.x * block.y * block.z;
    if (threads == 0 || threads % 32 != 0 || threads > 1024) {
        return -1;
    }
    grid_dim = grid;
    block_dim = block;
    errors.store(0);
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        std::vector<std::unique_ptr<Warp>> warps;
        for (unsigned int w = 0; w < threads / 32; ++w) {
            warps.push_back(std::make_unique<Warp>());
        }
        std::barrier<> sync_block(threads);
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                thread_idx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                block_idx = dim3{bx, by, bz};
                warp = warps[t / 32].get();
                lane = t % 32;
                block_barrier = &sync_block;
                body();
                warp->exited.fetch_add(1);
                warp->meet.arrive_and_drop();
                sync_block.arrive_and_drop();
            });
        }
        for (auto& thread : pool) {
            thread.join();
        }
    }
    return errors.load();
}

}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned int, float v, int mask) { return emu::exchange(emu::warp->f, v, emu::lane ^ mask); }
inline int __shfl_xor_sync(unsigned int, int v, int mask) { return emu::exchange(emu::warp->i, v, emu::lane ^ mask); }
inline unsigned int __shfl_xor_sync(unsigned int, unsigned int v, int mask) { return emu::exchange(emu::warp->u, v, emu::lane ^ mask); }
inline float __shfl_sync(unsigned int, float v, int src) { return emu::exchange(emu::warp->f, v, src); }
inline float __shfl_down_sync(unsigned int, float v, unsigned int d) { return emu::exchange(emu::warp->f, v, emu::lane + d < 32 ? emu::lane + d : emu::lane); }

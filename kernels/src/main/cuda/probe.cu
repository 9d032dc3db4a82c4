// The build pipeline's proof: one trivial kernel that every CUDA build carries, so the GPU test can check that a
// fatbin loads, a kernel launches and its result comes back. Java twin: java.util.Arrays.fill(out, 0, n, value).

/** out [n] fp32: out[i] = value for i < n; one thread per element, any grid that covers n. */
extern "C" __global__ void m2q_fill_f32(float* out, float value, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = value;
    }
}

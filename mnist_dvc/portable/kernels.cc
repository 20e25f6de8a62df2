// The model's contractions in float32, each sum in an order this file fixes: the same bits on
// every x86-64 CPU with AVX2 and FMA, whatever its cache sizes, and at any thread count.
//
// Why not TensorFlow's own kernels: their matrix products split K into blocks sized from the
// CPU's caches (Eigen) or chosen by ISA (oneDNN's sgemm), and into per-thread slices when K is
// long, and each slice is a separately rounded partial sum (docs/reproducibility.md).
//
// The arithmetic here, for every output element C[m][n] = sum over k of A[m][k] * B[k][n]:
//   - K is cut into chunks of kChunk, a constant; within a chunk the products are added by one
//     chain of fused multiply-adds in ascending k (acc = fma(a, b, acc), from acc = 0);
//   - the chunks' partial sums are then added in ascending chunk order.
// Only the shapes decide that order. Cache blocking (kKc, kMc) and the threads only decide who
// computes which elements when: a chain continued after a store and a reload is the same chain.
// Every product is an FMA, correctly rounded by definition, so the bits depend on nothing else.
// Compiled with -ffp-contract=off: the compiler may not fuse or reorder anything either.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

constexpr int64_t kMr = 6;       // rows of the register tile
constexpr int64_t kNr = 16;      // columns of the register tile: two 8-float AVX registers
constexpr int64_t kKc = 256;     // K per packed block, for the caches: no effect on results
constexpr int64_t kMc = 96;      // rows per task, for the threads: no effect on results
constexpr int64_t kChunk = 4096; // K per chunk: part of the arithmetic (see the top)

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

Buffer Allocate(int64_t count) {
  const size_t bytes = ((std::max<int64_t>(count, 1) * sizeof(float) + 63) / 64) * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

int64_t DivUp(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool HasAvx2Fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// What follows a sum once it is complete, element by element: + bias[column] (TensorFlow's
// BiasAdd: one add), then relu as TensorFlow computes it (max(0, x) with x kept where equal or
// NaN: the same bits as tf.nn.relu). Fused here to save two passes over the activations.
struct Epilogue {
  std::vector<float> bias;  // per column, zero-padded to whole panels; empty: none
  bool relu = false;
  const float* Bias(int64_t panel) const { return bias.empty() ? nullptr : &bias[panel * 16]; }
};

// c[r][0..16) (+)= sum over k of A[r][k] * b[k][0..16) for r < 6, where A[r][k] is
// rows[r][offsets[k]] (the operand read where it lies: no copy of an im2col matrix) and b holds
// 16 floats per k, ldb apart. One FMA chain per element, in ascending k. Where the sums are
// complete, `bias` (16 floats, or none) is added and `relu` applied before the store.
__attribute__((target("avx2,fma"))) void Kernel6x16(int64_t kc, const float* const* rows,
                                                    const int64_t* offsets, const float* b,
                                                    int64_t ldb, float* c, int64_t ldc,
                                                    bool accumulate, const float* bias,
                                                    bool relu) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (accumulate) {
    c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
    c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
    c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  }
  const float *a0 = rows[0], *a1 = rows[1], *a2 = rows[2];
  const float *a3 = rows[3], *a4 = rows[4], *a5 = rows[5];
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k, b += ldb) {
    const int64_t o = offsets[k];
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a0 + o);
    c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a1 + o);
    c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a2 + o);
    c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a3 + o);
    c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a4 + o);
    c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a5 + o);
    c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  if (bias != nullptr) {
    const __m256 bias0 = _mm256_loadu_ps(bias), bias1 = _mm256_loadu_ps(bias + 8);
    c00 = _mm256_add_ps(c00, bias0), c01 = _mm256_add_ps(c01, bias1);
    c10 = _mm256_add_ps(c10, bias0), c11 = _mm256_add_ps(c11, bias1);
    c20 = _mm256_add_ps(c20, bias0), c21 = _mm256_add_ps(c21, bias1);
    c30 = _mm256_add_ps(c30, bias0), c31 = _mm256_add_ps(c31, bias1);
    c40 = _mm256_add_ps(c40, bias0), c41 = _mm256_add_ps(c41, bias1);
    c50 = _mm256_add_ps(c50, bias0), c51 = _mm256_add_ps(c51, bias1);
  }
  if (relu) {  // max_ps(0, x) returns x where they are equal or x is NaN, as Eigen's pmax does
    const __m256 zero = _mm256_setzero_ps();
    c00 = _mm256_max_ps(zero, c00), c01 = _mm256_max_ps(zero, c01);
    c10 = _mm256_max_ps(zero, c10), c11 = _mm256_max_ps(zero, c11);
    c20 = _mm256_max_ps(zero, c20), c21 = _mm256_max_ps(zero, c21);
    c30 = _mm256_max_ps(zero, c30), c31 = _mm256_max_ps(zero, c31);
    c40 = _mm256_max_ps(zero, c40), c41 = _mm256_max_ps(zero, c41);
    c50 = _mm256_max_ps(zero, c50), c51 = _mm256_max_ps(zero, c51);
  }
  _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
  _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

// A tile at the matrix's edge (fewer than 6 rows or 16 columns): the same kernel into a local
// tile, of which only the valid part is read from and written to c. Missing rows repeat a valid
// one and B is zero beyond its last column: what they compute is dropped.
void EdgeTile(int64_t kc, const float* const* rows, const int64_t* offsets, const float* b,
              int64_t ldb, float* c, int64_t ldc, bool accumulate, const float* bias, bool relu,
              int64_t height, int64_t width) {
  alignas(64) float tile[kMr * kNr] = {};
  if (accumulate) {
    for (int64_t r = 0; r < height; ++r) std::memcpy(tile + r * kNr, c + r * ldc, width * 4);
  }
  Kernel6x16(kc, rows, offsets, b, ldb, tile, kNr, accumulate, bias, relu);
  for (int64_t r = 0; r < height; ++r) std::memcpy(c + r * ldc, tile + r * kNr, width * 4);
}

// B, K x N, as panels of 16 columns: panel p's row k is 16 floats at Panel(p) + k * ldb.
struct OperandB {
  const float* base;
  int64_t ldb;           // floats from one row to the next within a panel
  int64_t panel_stride;  // floats from one panel to the next
  Buffer owned;          // the packed copy, if any
  const float* Panel(int64_t p) const { return base + p * panel_stride; }
};

// B packed, each panel K x 16 floats, zero beyond column N; `at(k, n)` is the element in row
// k, column n.
template <class At>
OperandB PackB(OpKernelContext* context, int64_t k_size, int64_t n_size, const At& at) {
  const int64_t panels = DivUp(n_size, kNr);
  Buffer packed = Allocate(panels * k_size * kNr);
  float* out = packed.get();
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  pool->ParallelFor(panels * k_size, 4 * kNr, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t p = row / k_size, k = row % k_size;
      for (int64_t j = 0; j < kNr; ++j) {
        const int64_t n = p * kNr + j;
        out[row * kNr + j] = n < n_size ? at(k, n) : 0.0f;
      }
    }
  });
  return OperandB{out, kNr, k_size * kNr, std::move(packed)};
}

// A row-major B (K x N) read in place where N is a multiple of 16 (no copy), packed otherwise.
OperandB RowMajorB(OpKernelContext* context, const float* b, int64_t k_size, int64_t n_size) {
  if (n_size % kNr == 0) return OperandB{b, n_size, kNr, nullptr};
  return PackB(context, k_size, n_size, [=](int64_t k, int64_t n) { return b[k * n_size + n]; });
}

// A, M x K, as row m's first element `row(m)` and the offset of column k from it, offsets[k].
struct OperandA {
  std::function<const float*(int64_t)> row;
  std::vector<int64_t> offsets;
};

// The epilogue of one complete sum, as Kernel6x16 applies it.
float Finish(float sum, const Epilogue& e, int64_t column) {
  if (!e.bias.empty()) sum += e.bias[column];
  return e.relu && 0.0f > sum ? 0.0f : sum;
}

// C (M x N, row-major) = A B, in the order the file's top describes, then `e` on each element.
void Gemm(OpKernelContext* context, int64_t m_size, int64_t n_size, int64_t k_size,
          const OperandA& a, const OperandB& b, float* c, const Epilogue& e = Epilogue()) {
  if (m_size == 0 || n_size == 0) return;
  if (k_size == 0) {
    for (int64_t i = 0; i < m_size * n_size; ++i) c[i] = Finish(0.0f, e, i % n_size);
    return;
  }
  const int64_t chunks = DivUp(k_size, kChunk), blocks = DivUp(m_size, kMc);
  const int64_t panels = DivUp(n_size, kNr);
  // With more than one chunk, each chunk's partial sums go to a buffer of their own, then are
  // added in chunk order below.
  Buffer partial = chunks > 1 ? Allocate(chunks * m_size * n_size) : nullptr;
  auto task = [&](int64_t begin, int64_t end) {
    const float* rows[kMc / kMr][kMr];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t block = t / chunks, chunk = t % chunks;
      const int64_t m0 = block * kMc, height = std::min(kMc, m_size - m0);
      const int64_t tiles = DivUp(height, kMr);
      for (int64_t i = 0; i < tiles; ++i) {
        for (int64_t r = 0; r < kMr; ++r) {
          rows[i][r] = a.row(m0 + std::min(i * kMr + r, height - 1));  // see EdgeTile
        }
      }
      const int64_t k_begin = chunk * kChunk, k_end = std::min(k_size, k_begin + kChunk);
      float* out = chunks > 1 ? partial.get() + chunk * m_size * n_size : c;
      for (int64_t k0 = k_begin; k0 < k_end; k0 += kKc) {
        const int64_t kc = std::min(kKc, k_end - k0);
        const bool accumulate = k0 > k_begin;
        const bool complete = chunks == 1 && k0 + kc == k_end;  // the epilogue's turn
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t width = std::min(kNr, n_size - p * kNr);
          const float* b_block = b.Panel(p) + k0 * b.ldb;
          const float* bias = complete ? e.Bias(p) : nullptr;
          const bool relu = complete && e.relu;
          for (int64_t i = 0; i < tiles; ++i) {
            const int64_t h = std::min(kMr, height - i * kMr);
            float* tile = out + (m0 + i * kMr) * n_size + p * kNr;
            if (h == kMr && width == kNr) {
              Kernel6x16(kc, rows[i], a.offsets.data() + k0, b_block, b.ldb, tile, n_size,
                         accumulate, bias, relu);
            } else {
              EdgeTile(kc, rows[i], a.offsets.data() + k0, b_block, b.ldb, tile, n_size,
                       accumulate, bias, relu, h, width);
            }
          }
        }
      }
    }
  };
  const int64_t cost = 2 * kMc * std::min(k_size, kChunk) * n_size;  // flops per task
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  pool->ParallelFor(blocks * chunks, cost, task);
  if (chunks == 1) return;
  const int64_t size = m_size * n_size;
  pool->ParallelFor(size, 2 * chunks, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float sum = partial[i];
      for (int64_t chunk = 1; chunk < chunks; ++chunk) sum += partial[chunk * size + i];
      c[i] = Finish(sum, e, i % n_size);
    }
  });
}

absl::Status CpuStatus() {
  if (HasAvx2Fma()) return absl::OkStatus();
  return tensorflow::errors::FailedPrecondition(
      "numerics: portable needs a CPU with AVX2 and FMA, and this one lacks one or both");
}

// The epilogue an op's `bias` input (empty: none) and `relu` attribute ask for, for N columns.
absl::Status EpilogueOf(const Tensor& bias, int64_t n_size, bool relu, Epilogue* e) {
  if (bias.dims() != 1 || (bias.NumElements() != 0 && bias.NumElements() != n_size)) {
    return tensorflow::errors::InvalidArgument("the bias has ", bias.NumElements(),
                                               " values for ", n_size, " columns");
  }
  e->relu = relu;
  if (bias.NumElements() != 0) {
    e->bias.assign(DivUp(n_size, kNr) * kNr, 0.0f);
    std::copy_n(bias.flat<float>().data(), n_size, e->bias.begin());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// PortableMatMul: product = op(a) op(b) (op transposing where asked, as tf.linalg.matmul), then
// + bias and relu where given.

class MatMulOp : public OpKernel {
 public:
  explicit MatMulOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("transpose_a", &transpose_a_));
    OP_REQUIRES_OK(context, context->GetAttr("transpose_b", &transpose_b_));
    OP_REQUIRES_OK(context, context->GetAttr("relu", &relu_));
  }

  void Compute(OpKernelContext* context) override {
    OP_REQUIRES_OK(context, CpuStatus());
    const Tensor& a = context->input(0);
    const Tensor& b = context->input(1);
    OP_REQUIRES(context, a.dims() == 2 && b.dims() == 2,
                tensorflow::errors::InvalidArgument("PortableMatMul takes two matrices"));
    const int64_t m = a.dim_size(transpose_a_ ? 1 : 0), k = a.dim_size(transpose_a_ ? 0 : 1);
    const int64_t n = b.dim_size(transpose_b_ ? 0 : 1);
    OP_REQUIRES(context, b.dim_size(transpose_b_ ? 1 : 0) == k,
                tensorflow::errors::InvalidArgument("PortableMatMul: inner sizes differ"));
    Epilogue epilogue;
    OP_REQUIRES_OK(context, EpilogueOf(context->input(2), n, relu_, &epilogue));
    Tensor* product = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({m, n}), &product));
    const float* pa = a.flat<float>().data();
    const float* pb = b.flat<float>().data();
    // A[i][j] lies at pa + i * K + j, or transposed at pa + j * M + i.
    const int64_t row_step = transpose_a_ ? 1 : k, column_step = transpose_a_ ? m : 1;
    OperandA operand{[=](int64_t i) { return pa + i * row_step; }, std::vector<int64_t>(k)};
    for (int64_t j = 0; j < k; ++j) operand.offsets[j] = j * column_step;
    const OperandB packed =
        transpose_b_ ? PackB(context, k, n, [=](int64_t i, int64_t j) { return pb[j * k + i]; })
                     : RowMajorB(context, pb, k, n);
    Gemm(context, m, n, k, operand, packed, product->flat<float>().data(), epilogue);
  }

 private:
  bool transpose_a_ = false, transpose_b_ = false, relu_ = false;
};

// ---------------------------------------------------------------------------------------------
// Convolutions: input NHWC, filter HWIO (Keras's layouts), stride 1, no padding ("valid"), the
// only kind the architectures use. Each is a product over an im2col matrix that is never
// stored: A's rows and offsets point into the input where the matrix's elements would be.
//   forward:  out[(n,i,j)][o]    = sum over (y,x,c) of in[n][i+y][j+x][c] w[y][x][c][o]
//   filter:   dw[(y,x,c)][o]     = sum over (n,i,j) of in[n][i+y][j+x][c] dout[n][i][j][o]
//   input:    din[(n,p,q)][c]    = sum over (y,x,o) of dout[n][p-y][q-x][o] w[y][x][c][o]
//                                  (dout zero outside: a zero-padded copy is read)

struct ConvShape {
  int64_t batch, height, width, channels, kh, kw, filters;
  int64_t out_h() const { return height - kh + 1; }
  int64_t out_w() const { return width - kw + 1; }
  int64_t taps() const { return kh * kw * channels; }
  int64_t pixels() const { return batch * out_h() * out_w(); }
  // Offset of tap (y, x, c), as one index, from an input pixel's first element.
  int64_t TapOffset(int64_t tap) const {
    const int64_t c = tap % channels, yx = tap / channels;
    return ((yx / kw) * width + yx % kw) * channels + c;
  }
  // Offset in the input of output pixel (n, i, j), as one index, at tap (0, 0, 0).
  int64_t PixelOffset(int64_t pixel) const {
    const int64_t j = pixel % out_w(), ni = pixel / out_w();
    const int64_t i = ni % out_h(), n = ni / out_h();
    return ((n * height + i) * width + j) * channels;
  }
};

ConvShape ShapeOf(const TensorShape& input, const TensorShape& filter) {
  return ConvShape{input.dim_size(0),  input.dim_size(1),  input.dim_size(2), input.dim_size(3),
                   filter.dim_size(0), filter.dim_size(1), filter.dim_size(3)};
}

absl::Status ConvStatus(const TensorShape& input, const TensorShape& filter) {
  if (input.dims() != 4 || filter.dims() != 4) {
    return tensorflow::errors::InvalidArgument("Portable convolutions take NHWC and HWIO");
  }
  if (input.dim_size(3) != filter.dim_size(2)) {
    return tensorflow::errors::InvalidArgument("input and filter channels differ");
  }
  if (input.dim_size(1) < filter.dim_size(0) || input.dim_size(2) < filter.dim_size(1)) {
    return tensorflow::errors::InvalidArgument("filter larger than the input");
  }
  return CpuStatus();
}

absl::Status ShapeFromTensor(const Tensor& sizes, TensorShape* shape) {
  if (sizes.dims() != 1 || sizes.NumElements() != 4) {
    return tensorflow::errors::InvalidArgument("a convolution's sizes are 4 numbers");
  }
  auto values = sizes.flat<int32_t>();
  return TensorShape::BuildTensorShape({values(0), values(1), values(2), values(3)}, shape);
}

class Conv2DOp : public OpKernel {
 public:
  explicit Conv2DOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("relu", &relu_));
  }
  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    const Tensor& filter = context->input(1);
    OP_REQUIRES_OK(context, ConvStatus(input.shape(), filter.shape()));
    const ConvShape s = ShapeOf(input.shape(), filter.shape());
    Epilogue epilogue;
    OP_REQUIRES_OK(context, EpilogueOf(context->input(2), s.filters, relu_, &epilogue));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       0, TensorShape({s.batch, s.out_h(), s.out_w(), s.filters}), &output));
    const float* in = input.flat<float>().data();
    OperandA operand{[&](int64_t pixel) { return in + s.PixelOffset(pixel); },
                     std::vector<int64_t>(s.taps())};
    for (int64_t t = 0; t < s.taps(); ++t) operand.offsets[t] = s.TapOffset(t);
    const float* w = filter.flat<float>().data();
    const OperandB b = RowMajorB(context, filter.flat<float>().data(), s.taps(), s.filters);
    Gemm(context, s.pixels(), s.filters, s.taps(), operand, b, output->flat<float>().data(),
         epilogue);
  }

 private:
  bool relu_ = false;
};

class Conv2DBackpropFilterOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    TensorShape filter_shape;
    OP_REQUIRES_OK(context, ShapeFromTensor(context->input(1), &filter_shape));
    const Tensor& out_backprop = context->input(2);
    OP_REQUIRES_OK(context, ConvStatus(input.shape(), filter_shape));
    const ConvShape s = ShapeOf(input.shape(), filter_shape);
    Tensor* grad = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, filter_shape, &grad));
    const float* in = input.flat<float>().data();
    OperandA operand{[&](int64_t tap) { return in + s.TapOffset(tap); },
                     std::vector<int64_t>(s.pixels())};
    for (int64_t p = 0; p < s.pixels(); ++p) operand.offsets[p] = s.PixelOffset(p);
    const OperandB b = RowMajorB(context, out_backprop.flat<float>().data(), s.pixels(), s.filters);
    Gemm(context, s.taps(), s.filters, s.pixels(), operand, b, grad->flat<float>().data());
  }
};

class Conv2DBackpropInputOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    TensorShape input_shape;
    OP_REQUIRES_OK(context, ShapeFromTensor(context->input(0), &input_shape));
    const Tensor& filter = context->input(1);
    const Tensor& out_backprop = context->input(2);
    OP_REQUIRES_OK(context, ConvStatus(input_shape, filter.shape()));
    const ConvShape s = ShapeOf(input_shape, filter.shape());
    Tensor* grad = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, input_shape, &grad));
    // dout zero-padded by the filter's size less one on every side: the input gradient is then
    // a valid convolution of it with the filter turned by 180 degrees and its channels swapped.
    const ConvShape padded{s.batch, s.out_h() + 2 * (s.kh - 1), s.out_w() + 2 * (s.kw - 1),
                           s.filters, s.kh, s.kw, s.channels};
    Buffer pad = Allocate(s.batch * padded.height * padded.width * s.filters);
    const float* dout = out_backprop.flat<float>().data();
    const int64_t row = padded.width * s.filters, run = s.out_w() * s.filters;
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(s.batch * padded.height, row, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* line = pad.get() + r * row;
        std::fill(line, line + row, 0.0f);
        const int64_t n = r / padded.height, i = r % padded.height - (s.kh - 1);
        if (i >= 0 && i < s.out_h()) {
          std::memcpy(line + (s.kw - 1) * s.filters, dout + (n * s.out_h() + i) * run, run * 4);
        }
      }
    });
    // padded.PixelOffset(pixel) for an input pixel: padded's output size is the input's.
    OperandA operand{[&](int64_t pixel) { return pad.get() + padded.PixelOffset(pixel); },
                     std::vector<int64_t>(padded.taps())};
    for (int64_t t = 0; t < padded.taps(); ++t) operand.offsets[t] = padded.TapOffset(t);
    // Tap (y, x, o) of the padded dout meets w[kh-1-y][kw-1-x][c][o].
    const float* w = filter.flat<float>().data();
    const OperandB b = PackB(context, padded.taps(), s.channels, [&](int64_t t, int64_t c) {
      const int64_t o = t % s.filters, yx = t / s.filters;
      const int64_t y = s.kh - 1 - yx / s.kw, x = s.kw - 1 - yx % s.kw;
      return w[((y * s.kw + x) * s.channels + c) * s.filters + o];
    });
    Gemm(context, s.batch * s.height * s.width, s.channels, padded.taps(), operand, b,
         grad->flat<float>().data());
  }
};

// ---------------------------------------------------------------------------------------------
// PortableColumnSum: x of shape (..., N) -> (N,), the sum over every leading index, as the
// product of a row of ones with x: one chain of adds per column in ascending row order within
// each chunk of rows, the chunks added in order. (fma(1, x, acc) is exactly acc + x.)

class ColumnSumOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    OP_REQUIRES_OK(context, CpuStatus());
    const Tensor& input = context->input(0);
    OP_REQUIRES(context, input.dims() >= 1,
                tensorflow::errors::InvalidArgument("PortableColumnSum takes a tensor"));
    const int64_t n = input.dim_size(input.dims() - 1);
    const int64_t rows = n == 0 ? 0 : input.NumElements() / n;
    Tensor* sums = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({n}), &sums));
    static const float kOne = 1.0f;
    const OperandA ones{[](int64_t) { return &kOne; }, std::vector<int64_t>(rows, 0)};
    const float* x = input.flat<float>().data();
    const OperandB b = RowMajorB(context, x, rows, n);
    Gemm(context, 1, n, rows, ones, b, sums->flat<float>().data());
  }
};

// ---------------------------------------------------------------------------------------------
// PortableMaxPool: NHWC, a size x size window every `stride`, no padding: the maximum and where
// it is (its index in the image), as TensorFlow's max pooling picks it: the first greatest in
// window order, so ties go where TensorFlow's MaxPoolGrad sends them. Maxima are exact; this is
// here for speed: TensorFlow's MaxPoolGrad searches every window again (36 ms a step here).
// PortableMaxPoolGrad adds each gradient to its maximum's place, in output order.

struct PoolShape {
  int64_t batch, height, width, channels, size, stride;
  int64_t out_h() const { return (height - size) / stride + 1; }
  int64_t out_w() const { return (width - size) / stride + 1; }
};

// The greatest of image[place + c] over the window's places and the first place holding it:
// TensorFlow's rule (the first value is taken, then only a strictly greater one).
void Window1(const float* image, const std::vector<int64_t>& places, int64_t c, float* best,
             int32_t* at) {
  float value = image[places[0] + c];
  int64_t where = places[0] + c;
  for (size_t w = 1; w < places.size(); ++w) {
    const float next = image[places[w] + c];
    if (value < next) value = next, where = places[w] + c;
  }
  *best = value, *at = static_cast<int32_t>(where);
}

// Window1 for channels c..c+7 at once (compares and selects: no rounding).
__attribute__((target("avx2"))) void Window8(const float* image,
                                             const std::vector<int64_t>& places, int64_t c,
                                             float* best, int32_t* at) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 value = _mm256_loadu_ps(image + places[0] + c);
  __m256i where = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(places[0] + c)), lanes);
  for (size_t w = 1; w < places.size(); ++w) {
    const __m256 next = _mm256_loadu_ps(image + places[w] + c);
    const __m256 greater = _mm256_cmp_ps(value, next, _CMP_LT_OQ);  // value < next
    const __m256i here =
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(places[w] + c)), lanes);
    value = _mm256_blendv_ps(value, next, greater);
    where = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(where),
                                                 _mm256_castsi256_ps(here), greater));
  }
  _mm256_storeu_ps(best, value);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), where);
}

class MaxPoolOp : public OpKernel {
 public:
  explicit MaxPoolOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("size", &size_));
    OP_REQUIRES_OK(context, context->GetAttr("stride", &stride_));
  }
  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    OP_REQUIRES(context, input.dims() == 4 && size_ >= 1 && stride_ >= 1 &&
                             input.dim_size(1) >= size_ && input.dim_size(2) >= size_,
                tensorflow::errors::InvalidArgument("PortableMaxPool: an NHWC input at least "
                                                    "one window large"));
    const PoolShape s{input.dim_size(0), input.dim_size(1), input.dim_size(2),
                      input.dim_size(3), size_, stride_};
    const TensorShape out_shape({s.batch, s.out_h(), s.out_w(), s.channels});
    Tensor *output = nullptr, *argmax = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, out_shape, &output));
    OP_REQUIRES_OK(context, context->allocate_output(1, out_shape, &argmax));
    const float* in = input.flat<float>().data();
    float* out = output->flat<float>().data();
    int32_t* where = argmax->flat<int32_t>().data();
    const int64_t c_size = s.channels;
    auto rows = [&](int64_t begin, int64_t end) {  // output rows (n, i)
      std::vector<int64_t> places(s.size * s.size);
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / s.out_h(), i = row % s.out_h();
        const float* image = in + n * s.height * s.width * c_size;
        for (int64_t j = 0; j < s.out_w(); ++j) {
          for (int64_t y = 0; y < s.size; ++y) {  // the window's pixels, in window order
            for (int64_t x = 0; x < s.size; ++x) {
              places[y * s.size + x] = ((i * s.stride + y) * s.width + j * s.stride + x) * c_size;
            }
          }
          const int64_t o = (row * s.out_w() + j) * c_size;
          int64_t c = 0;
          for (; c + 8 <= c_size; c += 8) Window8(image, places, c, out + o + c, where + o + c);
          for (; c < c_size; ++c) Window1(image, places, c, out + o + c, where + o + c);
        }
      }
    };
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(s.batch * s.out_h(), s.out_w() * c_size * s.size * s.size * 2, rows);
  }

 private:
  int64_t size_ = 2, stride_ = 2;
};

class MaxPoolGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    const Tensor& grad = context->input(0);
    const Tensor& argmax = context->input(1);
    TensorShape input_shape;
    OP_REQUIRES_OK(context, ShapeFromTensor(context->input(2), &input_shape));
    OP_REQUIRES(context, grad.shape() == argmax.shape() && grad.dims() == 4 &&
                             grad.dim_size(0) == input_shape.dim_size(0),
                tensorflow::errors::InvalidArgument("PortableMaxPoolGrad: shapes differ"));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, input_shape, &output));
    const int64_t batch = input_shape.dim_size(0);
    const int64_t image = batch == 0 ? 0 : input_shape.num_elements() / batch;
    const int64_t outputs = batch == 0 ? 0 : grad.NumElements() / batch;
    const float* g = grad.flat<float>().data();
    const int32_t* at = argmax.flat<int32_t>().data();
    float* dx = output->flat<float>().data();
    auto images = [&](int64_t begin, int64_t end) {  // each image in output order
      for (int64_t n = begin; n < end; ++n) {
        float* into = dx + n * image;
        std::fill(into, into + image, 0.0f);
        for (int64_t o = n * outputs; o < (n + 1) * outputs; ++o) {
          if (at[o] >= 0 && at[o] < image) into[at[o]] += g[o];
        }
      }
    };
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(batch, image + 2 * outputs, images);
  }
};

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

absl::Status ConvShapeFn(InferenceContext* c) {
  ShapeHandle input, filter;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &filter));
  DimensionHandle h, w;
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(input, 1), c->Dim(filter, 0), &h));
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(input, 2), c->Dim(filter, 1), &w));
  TF_RETURN_IF_ERROR(c->Add(h, 1, &h));
  TF_RETURN_IF_ERROR(c->Add(w, 1, &w));
  c->set_output(0, c->MakeShape({c->Dim(input, 0), h, w, c->Dim(filter, 3)}));
  return absl::OkStatus();
}

absl::Status ShapeFromInput(InferenceContext* c, int index) {
  ShapeHandle shape;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(index, &shape));
  c->set_output(0, shape);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("PortableMatMul")
    .Input("a: float")
    .Input("b: float")
    .Input("bias: float")
    .Output("product: float")
    .Attr("transpose_a: bool = false")
    .Attr("transpose_b: bool = false")
    .Attr("relu: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      bool t_a, t_b;
      TF_RETURN_IF_ERROR(c->GetAttr("transpose_a", &t_a));
      TF_RETURN_IF_ERROR(c->GetAttr("transpose_b", &t_b));
      ShapeHandle a, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &a));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &b));
      c->set_output(0, c->Matrix(c->Dim(a, t_a ? 1 : 0), c->Dim(b, t_b ? 0 : 1)));
      return absl::OkStatus();
    });
REGISTER_OP("PortableConv2D")
    .Input("input: float")
    .Input("filter: float")
    .Input("bias: float")
    .Output("output: float")
    .Attr("relu: bool = false")
    .SetShapeFn(ConvShapeFn);
REGISTER_OP("PortableMaxPool")
    .Input("input: float")
    .Output("output: float")
    .Output("argmax: int32")
    .Attr("size: int")
    .Attr("stride: int")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle input;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &input));
      int64_t size, stride;
      TF_RETURN_IF_ERROR(c->GetAttr("size", &size));
      TF_RETURN_IF_ERROR(c->GetAttr("stride", &stride));
      DimensionHandle h = c->UnknownDim(), w = c->UnknownDim();
      if (c->ValueKnown(c->Dim(input, 1)) && c->ValueKnown(c->Dim(input, 2))) {
        h = c->MakeDim((c->Value(c->Dim(input, 1)) - size) / stride + 1);
        w = c->MakeDim((c->Value(c->Dim(input, 2)) - size) / stride + 1);
      }
      ShapeHandle out = c->MakeShape({c->Dim(input, 0), h, w, c->Dim(input, 3)});
      c->set_output(0, out);
      c->set_output(1, out);
      return absl::OkStatus();
    });
REGISTER_OP("PortableMaxPoolGrad")
    .Input("grad: float")
    .Input("argmax: int32")
    .Input("input_sizes: int32")
    .Output("output: float")
    .SetShapeFn([](InferenceContext* c) { return ShapeFromInput(c, 2); });
REGISTER_OP("PortableConv2DBackpropFilter")
    .Input("input: float")
    .Input("filter_sizes: int32")
    .Input("out_backprop: float")
    .Output("output: float")
    .SetShapeFn([](InferenceContext* c) { return ShapeFromInput(c, 1); });
REGISTER_OP("PortableConv2DBackpropInput")
    .Input("input_sizes: int32")
    .Input("filter: float")
    .Input("out_backprop: float")
    .Output("output: float")
    .SetShapeFn([](InferenceContext* c) { return ShapeFromInput(c, 0); });
REGISTER_OP("PortableColumnSum")
    .Input("input: float")
    .Output("sums: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle input;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &input));
      c->set_output(0, c->Vector(c->Dim(input, -1)));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("PortableMatMul").Device(tensorflow::DEVICE_CPU), MatMulOp);
REGISTER_KERNEL_BUILDER(Name("PortableConv2D").Device(tensorflow::DEVICE_CPU), Conv2DOp);
REGISTER_KERNEL_BUILDER(Name("PortableConv2DBackpropFilter").Device(tensorflow::DEVICE_CPU),
                        Conv2DBackpropFilterOp);
REGISTER_KERNEL_BUILDER(Name("PortableConv2DBackpropInput").Device(tensorflow::DEVICE_CPU),
                        Conv2DBackpropInputOp);
REGISTER_KERNEL_BUILDER(Name("PortableColumnSum").Device(tensorflow::DEVICE_CPU), ColumnSumOp);
REGISTER_KERNEL_BUILDER(Name("PortableMaxPool").Device(tensorflow::DEVICE_CPU), MaxPoolOp);
REGISTER_KERNEL_BUILDER(Name("PortableMaxPoolGrad").Device(tensorflow::DEVICE_CPU), MaxPoolGradOp);

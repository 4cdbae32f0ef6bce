#include "kernels.h"
void kernels_install_gemm_avx2(kernel_table *t) { (void)t; }

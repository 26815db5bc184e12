#ifndef ATTUNE_CSOXR_SHIM_H
#define ATTUNE_CSOXR_SHIM_H

#include <soxr.h>

// soxr_quality_spec and soxr_io_spec return structs built from macros; wrap the one setup
// Attune uses: mono float32 in and out at "high quality".
static inline soxr_t attune_soxr_create(double input_rate, double output_rate, soxr_error_t *error) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
    return soxr_create(input_rate, output_rate, 1, error, &io, &quality, NULL);
}

#endif

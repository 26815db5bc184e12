#ifndef ATTUNE_CPNG_SHIM_H
#define ATTUNE_CPNG_SHIM_H

#include <string.h>
#include <png.h>

// libpng's simplified API (no setjmp): begin reads the header, so the size is known before
// any pixel is decoded; finish decodes to 8-bit RGB.
static inline int attune_png_begin(png_image *image, const void *data, size_t size) {
    memset(image, 0, sizeof *image);
    image->version = PNG_IMAGE_VERSION;
    return png_image_begin_read_from_memory(image, data, size);
}

static inline int attune_png_finish_rgb(png_image *image, void *pixels) {
    image->format = PNG_FORMAT_RGB;
    return png_image_finish_read(image, NULL, pixels, 0, NULL);
}

// Encodes 8-bit RGB as PNG into `buffer` (pass NULL to learn the size in *size).
static inline int attune_png_write_rgb(void *buffer, size_t *size, const void *pixels, unsigned width, unsigned height) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    image.format = PNG_FORMAT_RGB;
    return png_image_write_to_memory(&image, buffer, size, 0, pixels, 0, NULL);
}

#endif

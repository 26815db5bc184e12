#ifndef ATTUNE_CTURBOJPEG_SHIM_H
#define ATTUNE_CTURBOJPEG_SHIM_H

// libjpeg-turbo's TurboJPEG API: reads a JPEG's size before decoding it, and reports errors
// as return values (no setjmp), which suits Swift.
#include <turbojpeg.h>

#endif

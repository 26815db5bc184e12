#ifndef ATTUNE_CSNDFILE_SHIM_H
#define ATTUNE_CSNDFILE_SHIM_H

#include <stdint.h>
#include <string.h>
#include <sndfile.h>

// libsndfile reads from memory through a table of callbacks; these implement them over one
// caller-owned buffer, which must outlive the SNDFILE handle.
typedef struct AttuneMemoryFile {
    const uint8_t *data;
    sf_count_t size;
    sf_count_t position;
} AttuneMemoryFile;

static sf_count_t attune_memory_length(void *user) {
    return ((AttuneMemoryFile *)user)->size;
}

static sf_count_t attune_memory_seek(sf_count_t offset, int whence, void *user) {
    AttuneMemoryFile *file = (AttuneMemoryFile *)user;
    sf_count_t target = whence == SEEK_SET ? offset : whence == SEEK_CUR ? file->position + offset : file->size + offset;
    if (target < 0 || target > file->size) return -1;
    file->position = target;
    return target;
}

static sf_count_t attune_memory_read(void *destination, sf_count_t count, void *user) {
    AttuneMemoryFile *file = (AttuneMemoryFile *)user;
    sf_count_t left = file->size - file->position;
    if (count > left) count = left;
    if (count > 0) memcpy(destination, file->data + file->position, (size_t)count);
    file->position += count;
    return count;
}

static sf_count_t attune_memory_write(const void *source, sf_count_t count, void *user) {
    (void)source; (void)count; (void)user;
    return 0;
}

static sf_count_t attune_memory_tell(void *user) {
    return ((AttuneMemoryFile *)user)->position;
}

static inline SNDFILE *attune_sf_open_memory(AttuneMemoryFile *file, SF_INFO *info) {
    static SF_VIRTUAL_IO io = {
        attune_memory_length, attune_memory_seek, attune_memory_read, attune_memory_write, attune_memory_tell
    };
    return sf_open_virtual(&io, SFM_READ, info, file);
}

#endif

/* Recognising an HDF5 file by its signature needs no HDF5 library, so a
 * build without it can still say why it cannot read one. */
#include <stdio.h>
#include <string.h>

#include "io/evalfile.h"

int evalfile_is_hdf5(const char *path)
{
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head && memcmp(head, signature, sizeof head) == 0;
}

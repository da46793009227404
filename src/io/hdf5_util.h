/* Thin helpers over the HDF5 C API for 1-D and 2-D datasets that grow by
 * rows: create chunked and extendible, append rows, read whole, resize. */
#ifndef KPO_IO_HDF5_UTIL_H
#define KPO_IO_HDF5_UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "core/error.h"

/* Turns off HDF5's own error-stack printing: kpo reports errors itself. */
void h5u_silence(void);

/* Creates loc/name, an empty dataset of rows x cols (cols = 0 for 1-D)
 * that grows along rows; float datasets are filled with NaN. */
hid_t h5u_create_rows(hid_t loc, const char *name, hid_t type, hsize_t cols, hsize_t chunk_rows);

/* Current number of rows, or -1 on error. */
int64_t h5u_rows(hid_t dset);

int h5u_resize_rows(hid_t dset, int64_t rows);

/* Writes n_rows rows starting at row `first`, growing the dataset if needed. */
int h5u_write_rows(hid_t dset, hid_t memtype, int64_t first, int64_t n_rows, const void *data);

/* Reads rows [first, first + n_rows) into data. */
int h5u_read_rows(hid_t dset, hid_t memtype, int64_t first, int64_t n_rows, void *data);

/* Opens group `name` under loc, creating it when absent. */
hid_t h5u_group(hid_t loc, const char *name);

int h5u_write_string_attr(hid_t loc, const char *name, const char *value);
/* Reads a string attribute into a malloc'ed buffer. */
int h5u_read_string_attr(hid_t loc, const char *name, char **value);
int h5u_write_int_attr(hid_t loc, const char *name, int64_t value);
int h5u_read_int_attr(hid_t loc, const char *name, int64_t *value);
int h5u_write_double_attr(hid_t loc, const char *name, double value);

#endif

/* Thin helpers over the HDF5 C API for 1-D and 2-D datasets that grow by
 * rows: create chunked and extendible, append rows, read whole, resize.
 * Every HDF5 call's result is checked: a close or flush can be where a
 * buffered chunk reaches the disk and fails (a full disk). */
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

/* Closes a dataset, group, dataspace, datatype or attribute (by its kind);
 * KPO_ERR when HDF5 reports a failure (for a dataset: writing its buffered
 * chunks). An id < 0 is no-op success. */
int h5u_close(hid_t id);

/* Current number of rows, or -1 on error. */
int64_t h5u_rows(hid_t dset);

/* Checks that dset is laid out as a reader expects: 1-D when cols = 0,
 * else 2-D with exactly cols columns, of class cls (H5T_INTEGER or
 * H5T_FLOAT) with 8-byte elements. *rows (when not NULL) gets its length.
 * On a mismatch err reads "FILE: /NAME: expected int64 [n], found float64
 * [4, 20000]" (file and name as given). */
int h5u_check_rows(hid_t dset, const char *file, const char *name, H5T_class_t cls, hsize_t cols,
                   int64_t *rows, kpo_error *err);

int h5u_resize_rows(hid_t dset, int64_t rows);

/* Writes n_rows rows of cols values (cols = 0: a 1-D dataset) starting at
 * row `first`, growing the dataset if needed. Fails unless the dataset has
 * that rank and width. */
int h5u_write_rows(hid_t dset, hid_t memtype, hsize_t cols, int64_t first, int64_t n_rows,
                   const void *data);

/* Reads rows [first, first + n_rows) of cols values (cols = 0: 1-D) into
 * data, which holds n_rows * max(cols, 1) values. Fails, reading nothing,
 * unless the dataset has that rank and width and holds those rows. */
int h5u_read_rows(hid_t dset, hid_t memtype, hsize_t cols, int64_t first, int64_t n_rows,
                  void *data);

/* Opens group `name` under loc, creating it when absent. */
hid_t h5u_group(hid_t loc, const char *name);

int h5u_write_string_attr(hid_t loc, const char *name, const char *value);
/* Reads a string attribute into a malloc'ed buffer. */
int h5u_read_string_attr(hid_t loc, const char *name, char **value);
int h5u_write_int_attr(hid_t loc, const char *name, int64_t value);
int h5u_read_int_attr(hid_t loc, const char *name, int64_t *value);
int h5u_write_double_attr(hid_t loc, const char *name, double value);

#endif

/* Helpers over the HDF5 C API for row-growing datasets (hdf5_util.h):
 * shape-checked row reads and writes, checked closes, scalar attributes. */
#include "io/hdf5_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h5u_silence(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int h5u_close(hid_t id)
{
    if (id < 0)
        return KPO_OK;
    herr_t status;
    switch (H5Iget_type(id)) {
    case H5I_DATASET: status = H5Dclose(id); break;
    case H5I_GROUP: status = H5Gclose(id); break;
    case H5I_DATASPACE: status = H5Sclose(id); break;
    case H5I_DATATYPE: status = H5Tclose(id); break;
    case H5I_ATTR: status = H5Aclose(id); break;
    case H5I_GENPROP_LST: status = H5Pclose(id); break;
    case H5I_FILE: status = H5Fclose(id); break;
    default: status = -1; break;
    }
    return status < 0 ? KPO_ERR : KPO_OK;
}

hid_t h5u_create_rows(hid_t loc, const char *name, hid_t type, hsize_t cols, hsize_t chunk_rows)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols}, chunk[2] = {chunk_rows, cols};
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0;
    if (ok && H5Tget_class(type) == H5T_FLOAT) {
        double nan_fill = NAN;
        ok = H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan_fill) >= 0;
    }
    hid_t dset = ok ? H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    ok = h5u_close(dcpl) == KPO_OK && ok;
    ok = h5u_close(space) == KPO_OK && ok;
    if (!ok && dset >= 0) {
        H5Dclose(dset);
        dset = -1;
    }
    return dset;
}

/* rank (1 or 2) and dims (dims[1] = 0 when 1-D); -1 for any other rank. */
static int dataset_shape(hid_t dset, hsize_t dims[2])
{
    hid_t space = H5Dget_space(dset);
    if (space < 0)
        return -1;
    int rank = H5Sget_simple_extent_ndims(space);
    dims[0] = dims[1] = 0;
    if (rank < 1 || rank > 2 || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        rank = -1;
    if (h5u_close(space) != KPO_OK)
        rank = -1;
    return rank;
}

int64_t h5u_rows(hid_t dset)
{
    hsize_t dims[2];
    if (dataset_shape(dset, dims) < 0 || dims[0] > (hsize_t)INT64_MAX)
        return -1;
    return (int64_t)dims[0];
}

/* "int64", "float32", "string", ... for messages. */
static void describe_type(hid_t dset, char *out, size_t size)
{
    hid_t type = H5Dget_type(dset);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    size_t bytes = type >= 0 ? H5Tget_size(type) : 0;
    const char *name = cls == H5T_INTEGER ? "int" : cls == H5T_FLOAT ? "float"
                       : cls == H5T_STRING ? "string" : cls == H5T_COMPOUND ? "compound"
                       : "other";
    if (cls == H5T_INTEGER || cls == H5T_FLOAT)
        snprintf(out, size, "%s%zu", name, bytes * 8);
    else
        snprintf(out, size, "%s", name);
    h5u_close(type);
}

static void describe_shape(hid_t dset, char *out, size_t size)
{
    hid_t space = H5Dget_space(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        snprintf(out, size, "(unreadable shape)");
    } else {
        size_t used = (size_t)snprintf(out, size, "[");
        for (int k = 0; k < rank && used < size; k++)
            used += (size_t)snprintf(out + used, size - used, "%s%llu", k ? ", " : "",
                                     (unsigned long long)dims[k]);
        if (used < size)
            snprintf(out + used, size - used, "]");
    }
    h5u_close(space);
}

int h5u_check_rows(hid_t dset, const char *file, const char *name, H5T_class_t cls, hsize_t cols,
                   int64_t *rows, kpo_error *err)
{
    hsize_t dims[2];
    int rank = dataset_shape(dset, dims);
    hid_t type = H5Dget_type(dset);
    int type_ok = type >= 0 && H5Tget_class(type) == cls && H5Tget_size(type) == 8;
    h5u_close(type);
    if (rank != (cols ? 2 : 1) || (cols && dims[1] != cols) || !type_ok ||
        dims[0] > (hsize_t)INT64_MAX) {
        char want[64], found_type[32], found_shape[160];
        if (cols)
            snprintf(want, sizeof want, "%s [n, %llu]", cls == H5T_FLOAT ? "float64" : "int64",
                     (unsigned long long)cols);
        else
            snprintf(want, sizeof want, "%s [n]", cls == H5T_FLOAT ? "float64" : "int64");
        describe_type(dset, found_type, sizeof found_type);
        describe_shape(dset, found_shape, sizeof found_shape);
        return error_set(err, "%s: /%s: expected %s, found %s %s", file, name, want, found_type,
                         found_shape);
    }
    if (rows)
        *rows = (int64_t)dims[0];
    return KPO_OK;
}

int h5u_resize_rows(hid_t dset, int64_t rows)
{
    hsize_t dims[2];
    if (rows < 0 || dataset_shape(dset, dims) < 0)
        return KPO_ERR;
    dims[0] = (hsize_t)rows;
    return H5Dset_extent(dset, dims) < 0 ? KPO_ERR : KPO_OK;
}

/* Selects rows [first, first + n_rows) of a dataset that must have the
 * rank and width the caller's buffer has (cols = 0: 1-D) and, when
 * `reading`, hold those rows. */
static int select_rows(hid_t dset, hsize_t cols, int64_t first, int64_t n_rows, int reading,
                       hid_t *file_space, hid_t *mem_space)
{
    hsize_t dims[2];
    int rank = dataset_shape(dset, dims);
    if (rank != (cols ? 2 : 1) || dims[1] != cols || first < 0 || n_rows < 0)
        return KPO_ERR;
    if (reading && ((hsize_t)first > dims[0] || (hsize_t)n_rows > dims[0] - (hsize_t)first))
        return KPO_ERR;
    hsize_t start[2] = {(hsize_t)first, 0}, count[2] = {(hsize_t)n_rows, cols};
    *file_space = H5Dget_space(dset);
    if (*file_space < 0)
        return KPO_ERR;
    if (H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        H5Sclose(*file_space);
        return KPO_ERR;
    }
    *mem_space = H5Screate_simple(rank, count, NULL);
    if (*mem_space < 0) {
        H5Sclose(*file_space);
        return KPO_ERR;
    }
    return KPO_OK;
}

int h5u_write_rows(hid_t dset, hid_t memtype, hsize_t cols, int64_t first, int64_t n_rows,
                   const void *data)
{
    if (n_rows == 0)
        return KPO_OK;
    int64_t rows = h5u_rows(dset);
    if (rows < 0 || first < 0 || n_rows < 0 || first > INT64_MAX - n_rows)
        return KPO_ERR;
    if (first + n_rows > rows && h5u_resize_rows(dset, first + n_rows) != KPO_OK)
        return KPO_ERR;
    hid_t file_space, mem_space;
    if (select_rows(dset, cols, first, n_rows, 0, &file_space, &mem_space) != KPO_OK)
        return KPO_ERR;
    herr_t status = H5Dwrite(dset, memtype, mem_space, file_space, H5P_DEFAULT, data);
    int ok = status >= 0;
    ok = h5u_close(mem_space) == KPO_OK && ok;
    ok = h5u_close(file_space) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int h5u_read_rows(hid_t dset, hid_t memtype, hsize_t cols, int64_t first, int64_t n_rows,
                  void *data)
{
    if (n_rows == 0)
        return KPO_OK;
    hid_t file_space, mem_space;
    if (select_rows(dset, cols, first, n_rows, 1, &file_space, &mem_space) != KPO_OK)
        return KPO_ERR;
    herr_t status = H5Dread(dset, memtype, mem_space, file_space, H5P_DEFAULT, data);
    int ok = status >= 0;
    ok = h5u_close(mem_space) == KPO_OK && ok;
    ok = h5u_close(file_space) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

hid_t h5u_group(hid_t loc, const char *name)
{
    htri_t exists = H5Lexists(loc, name, H5P_DEFAULT);
    if (exists < 0)
        return -1;
    if (exists > 0)
        return H5Gopen2(loc, name, H5P_DEFAULT);
    return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

static hid_t string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0)
        return -1;
    if (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

int h5u_write_string_attr(hid_t loc, const char *name, const char *value)
{
    hid_t type = string_type();
    hid_t space = H5Screate(H5S_SCALAR);
    int ok = type >= 0 && space >= 0;
    htri_t exists = ok ? H5Aexists(loc, name) : -1;
    ok = ok && exists >= 0 && (exists == 0 || H5Adelete(loc, name) >= 0);
    hid_t attr = ok ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = attr >= 0 && H5Awrite(attr, type, &value) >= 0;
    ok = h5u_close(attr) == KPO_OK && ok;
    ok = h5u_close(space) == KPO_OK && ok;
    ok = h5u_close(type) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int h5u_read_string_attr(hid_t loc, const char *name, char **value)
{
    *value = NULL;
    if (H5Aexists(loc, name) <= 0)
        return KPO_ERR;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = string_type();
    hid_t stored = attr >= 0 ? H5Aget_type(attr) : -1;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
    /* Only a scalar variable-length string is read: anything else would
     * not fit the one pointer below. */
    int ok = attr >= 0 && type >= 0 && stored >= 0 && space >= 0 &&
             H5Tget_class(stored) == H5T_STRING && H5Tis_variable_str(stored) > 0 &&
             H5Sget_simple_extent_npoints(space) == 1;
    char *text = NULL;
    if (ok && H5Aread(attr, type, &text) >= 0 && text) {
        *value = strdup(text);
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, &text);
    }
    h5u_close(space);
    h5u_close(stored);
    h5u_close(type);
    h5u_close(attr);
    return *value ? KPO_OK : KPO_ERR;
}

/* A scalar attribute stored as file_type from a value in memory as mem_type. */
static int write_scalar_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                             const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space < 0 ? -1 : H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = attr >= 0 && H5Awrite(attr, mem_type, value) >= 0;
    ok = h5u_close(attr) == KPO_OK && ok;
    ok = h5u_close(space) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int h5u_write_int_attr(hid_t loc, const char *name, int64_t value)
{
    return write_scalar_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int h5u_read_int_attr(hid_t loc, const char *name, int64_t *value)
{
    if (H5Aexists(loc, name) <= 0)
        return KPO_ERR;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
    hid_t stored = attr >= 0 ? H5Aget_type(attr) : -1;
    /* One integer: an array attribute would overrun *value. */
    int ok = space >= 0 && stored >= 0 && H5Sget_simple_extent_npoints(space) == 1 &&
             H5Tget_class(stored) == H5T_INTEGER && H5Aread(attr, H5T_NATIVE_INT64, value) >= 0;
    h5u_close(stored);
    h5u_close(space);
    ok = h5u_close(attr) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int h5u_write_double_attr(hid_t loc, const char *name, double value)
{
    return write_scalar_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

#include "io/hdf5_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void h5u_silence(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

hid_t h5u_create_rows(hid_t loc, const char *name, hid_t type, hsize_t cols, hsize_t chunk_rows)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols}, chunk[2] = {chunk_rows, cols};
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (H5Tget_class(type) == H5T_FLOAT) {
        double nan_fill = NAN;
        H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan_fill);
    }
    hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return dset;
}

static int dataset_shape(hid_t dset, hsize_t dims[2])
{
    hid_t space = H5Dget_space(dset);
    if (space < 0)
        return -1;
    int rank = H5Sget_simple_extent_ndims(space);
    dims[1] = 0;
    if (rank < 1 || rank > 2 || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        rank = -1;
    H5Sclose(space);
    return rank;
}

int64_t h5u_rows(hid_t dset)
{
    hsize_t dims[2];
    return dataset_shape(dset, dims) < 0 ? -1 : (int64_t)dims[0];
}

int h5u_resize_rows(hid_t dset, int64_t rows)
{
    hsize_t dims[2];
    if (dataset_shape(dset, dims) < 0)
        return KPO_ERR;
    dims[0] = (hsize_t)rows;
    return H5Dset_extent(dset, dims) < 0 ? KPO_ERR : KPO_OK;
}

static int select_rows(hid_t dset, int64_t first, int64_t n_rows, hid_t *file_space,
                       hid_t *mem_space)
{
    hsize_t dims[2];
    int rank = dataset_shape(dset, dims);
    if (rank < 0)
        return KPO_ERR;
    hsize_t start[2] = {(hsize_t)first, 0}, count[2] = {(hsize_t)n_rows, dims[1]};
    *file_space = H5Dget_space(dset);
    if (H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        H5Sclose(*file_space);
        return KPO_ERR;
    }
    *mem_space = H5Screate_simple(rank, count, NULL);
    return KPO_OK;
}

int h5u_write_rows(hid_t dset, hid_t memtype, int64_t first, int64_t n_rows, const void *data)
{
    if (n_rows == 0)
        return KPO_OK;
    int64_t rows = h5u_rows(dset);
    if (rows < 0)
        return KPO_ERR;
    if (first + n_rows > rows && h5u_resize_rows(dset, first + n_rows) != KPO_OK)
        return KPO_ERR;
    hid_t file_space, mem_space;
    if (select_rows(dset, first, n_rows, &file_space, &mem_space) != KPO_OK)
        return KPO_ERR;
    herr_t status = H5Dwrite(dset, memtype, mem_space, file_space, H5P_DEFAULT, data);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    return status < 0 ? KPO_ERR : KPO_OK;
}

int h5u_read_rows(hid_t dset, hid_t memtype, int64_t first, int64_t n_rows, void *data)
{
    if (n_rows == 0)
        return KPO_OK;
    hid_t file_space, mem_space;
    if (select_rows(dset, first, n_rows, &file_space, &mem_space) != KPO_OK)
        return KPO_ERR;
    herr_t status = H5Dread(dset, memtype, mem_space, file_space, H5P_DEFAULT, data);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    return status < 0 ? KPO_ERR : KPO_OK;
}

hid_t h5u_group(hid_t loc, const char *name)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0)
        return H5Gopen2(loc, name, H5P_DEFAULT);
    return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

static hid_t string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    return type;
}

int h5u_write_string_attr(hid_t loc, const char *name, const char *value)
{
    hid_t type = string_type();
    hid_t space = H5Screate(H5S_SCALAR);
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = attr < 0 ? -1 : H5Awrite(attr, type, &value);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return status < 0 ? KPO_ERR : KPO_OK;
}

int h5u_read_string_attr(hid_t loc, const char *name, char **value)
{
    *value = NULL;
    if (H5Aexists(loc, name) <= 0)
        return KPO_ERR;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = string_type();
    char *text = NULL;
    herr_t status = H5Aread(attr, type, &text);
    if (status >= 0 && text) {
        *value = strdup(text);
        hid_t space = H5Aget_space(attr);
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, &text);
        H5Sclose(space);
    }
    H5Tclose(type);
    H5Aclose(attr);
    return (status < 0 || !*value) ? KPO_ERR : KPO_OK;
}

/* A scalar attribute stored as file_type from a value in memory as mem_type. */
static int write_scalar_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                             const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = attr < 0 ? -1 : H5Awrite(attr, mem_type, value);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    return status < 0 ? KPO_ERR : KPO_OK;
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
    herr_t status = H5Aread(attr, H5T_NATIVE_INT64, value);
    H5Aclose(attr);
    return status < 0 ? KPO_ERR : KPO_OK;
}

int h5u_write_double_attr(hid_t loc, const char *name, double value)
{
    return write_scalar_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

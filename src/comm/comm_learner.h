/* The learner's reductions over an MPI communicator of learners. */
#ifndef KPO_COMM_COMM_LEARNER_H
#define KPO_COMM_COMM_LEARNER_H

#include <mpi.h>

#include "learner/learner_comm.h"

/* comm must outlive the returned struct (it holds a pointer to it). */
learner_comm comm_learner_mpi(MPI_Comm *learners);

#endif

// Byte messages of any length on MPI, whose counts are int: a message of more than
// `kMessageBytesDefault` (2^31 - 1) bytes travels as one element of a derived datatype, whole
// blocks of that size and the rest, so its type signature is still n bytes and it matches a
// receive of the same n bytes built the same way (the receiver learns n from
// MPI_Get_elements_x, which counts past int). PLEAT_MPI_MESSAGE_BYTES lowers the block size
// (tests send small messages through the derived type).
#pragma once

#include <mpi.h>

#include <climits>
#include <cstddef>

namespace pleat::mpi {

constexpr size_t kMessageBytesDefault = static_cast<size_t>(INT_MAX);

// The block size: PLEAT_MPI_MESSAGE_BYTES when set to 1 .. 2^31 - 1, else the default.
size_t message_bytes_from_env();

// How `bytes` bytes go in one call: `count` elements of `type`; `derived` says that `type` was
// made here (free it with MPI_Type_free once the call has started).
struct MessageType {
  MPI_Datatype type = MPI_BYTE;
  int count = 0;
  bool derived = false;
};

// The type of a message of `bytes` bytes, blocks of at most `block` bytes; an MPI error code.
int message_type(size_t bytes, size_t block, MessageType* out);

}  // namespace pleat::mpi

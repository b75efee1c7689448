#include "message_bytes.h"

#include <cstdlib>

namespace pleat::mpi {

size_t message_bytes_from_env() {
  const char* text = std::getenv("PLEAT_MPI_MESSAGE_BYTES");
  if (text == nullptr) return kMessageBytesDefault;
  const long long v = std::atoll(text);
  return v >= 1 && static_cast<size_t>(v) <= kMessageBytesDefault ? static_cast<size_t>(v) : kMessageBytesDefault;
}

int message_type(size_t bytes, size_t block, MessageType* out) {
  if (bytes <= block) {
    *out = MessageType{MPI_BYTE, static_cast<int>(bytes), false};
    return MPI_SUCCESS;
  }
  const size_t whole = bytes / block;
  const size_t rest = bytes % block;
  if (whole > kMessageBytesDefault) return MPI_ERR_COUNT;
  MPI_Datatype one_block = MPI_DATATYPE_NULL;
  MPI_Datatype blocks = MPI_DATATYPE_NULL;
  int rc = MPI_Type_contiguous(static_cast<int>(block), MPI_BYTE, &one_block);
  if (rc == MPI_SUCCESS) rc = MPI_Type_contiguous(static_cast<int>(whole), one_block, &blocks);
  MPI_Datatype whole_message = MPI_DATATYPE_NULL;
  if (rc == MPI_SUCCESS && rest == 0) {
    whole_message = blocks;
    blocks = MPI_DATATYPE_NULL;
  } else if (rc == MPI_SUCCESS) {
    int lengths[2] = {1, static_cast<int>(rest)};
    MPI_Aint displacements[2] = {0, static_cast<MPI_Aint>(whole * block)};
    MPI_Datatype types[2] = {blocks, MPI_BYTE};
    rc = MPI_Type_create_struct(2, lengths, displacements, types, &whole_message);
  }
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&whole_message);
  if (one_block != MPI_DATATYPE_NULL) MPI_Type_free(&one_block);
  if (blocks != MPI_DATATYPE_NULL) MPI_Type_free(&blocks);
  if (rc != MPI_SUCCESS) {
    if (whole_message != MPI_DATATYPE_NULL) MPI_Type_free(&whole_message);
    return rc;
  }
  *out = MessageType{whole_message, 1, true};
  return MPI_SUCCESS;
}

}  // namespace pleat::mpi

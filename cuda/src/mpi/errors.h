// MPI error codes as pleat reports them: the class (a small stable number) and MPI's text.
#pragma once

#include <mpi.h>

#include <string>

namespace pleat::mpi {

inline std::string error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

inline int error_class(int code) {
  int cls = code;
  MPI_Error_class(code, &cls);
  return cls == MPI_SUCCESS ? 1 : cls;
}

}  // namespace pleat::mpi

// The MPI engine's receiving side: probing the p2p communicator for any message (MPI_Improbe,
// then MPI_Imrecv into a buffer of its size) and handing received messages to JS in the order
// MPI matched them, which is MPI's order per sender: a small message matched after a large one
// may finish first, and must wait for it.
#include "engine.h"

#include "errors.h"

namespace pleat::mpi {

void Engine::probe() {
  int flag = 0;
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, p2p_, &flag, &message, &status) != MPI_SUCCESS || !flag) return;
  // Counted as MPI_Count: a message may hold more than 2^31 - 1 bytes (message_bytes.h).
  MPI_Count count = 0;
  MPI_Get_elements_x(&status, MPI_BYTE, &count);
  Active a;
  a.message = true;
  a.source = status.MPI_SOURCE;
  a.tag = status.MPI_TAG;
  a.bytes.resize(static_cast<size_t>(count));
  MessageType type;
  int rc = message_type(a.bytes.size(), message_bytes_, &type);
  if (rc == MPI_SUCCESS) rc = MPI_Imrecv(a.bytes.data(), type.count, type.type, &message, &a.request);
  if (type.derived) MPI_Type_free(&type.type);  // a started receive completes normally
  if (rc != MPI_SUCCESS) {
    a.request = MPI_REQUEST_NULL;
    a.error = rc;
  }
  inbound_.push_back(std::move(a));
}

void Engine::deliver_inbound() {
  for (auto& in : inbound_) {
    if (in.request == MPI_REQUEST_NULL) continue;
    int flag = 0;
    MPI_Status status;
    const int rc = MPI_Test(&in.request, &flag, &status);
    if (rc != MPI_SUCCESS) {
      in.request = MPI_REQUEST_NULL;
      in.error = rc;
    }
  }
  while (!inbound_.empty() && inbound_.front().request == MPI_REQUEST_NULL) {
    Active& in = inbound_.front();
    auto* c = new Completion();
    c->message = true;
    c->source = in.source;
    c->tag = in.tag;
    if (in.error != MPI_SUCCESS) {
      c->status = error_class(in.error);
      c->error = error_text(in.error);
    }
    c->bytes = std::move(in.bytes);
    deliver_(c);
    inbound_.pop_front();
  }
}

}  // namespace pleat::mpi

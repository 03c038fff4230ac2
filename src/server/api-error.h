// Errors of the HTTP API in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
// Request handling throws ApiException; the server turns it into the status and this body.
#pragma once

#include <stdexcept>
#include <string>

namespace bitnet::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // OpenAI's: invalid_request_error, server_error
  std::string param;                           // the request field at fault; "" writes null
  std::string code;                            // e.g. "context_length_exceeded"; "" writes null
};

class ApiException : public std::runtime_error {
 public:
  explicit ApiException(ApiError e) : std::runtime_error(e.message), error_(std::move(e)) {}
  const ApiError& error() const { return error_; }

 private:
  ApiError error_;
};

// A 400 invalid_request_error naming the field.
[[noreturn]] inline void bad_request(const std::string& param, const std::string& message,
                                     const std::string& code = "") {
  throw ApiException({400, message, "invalid_request_error", param, code});
}

// The JSON body of an error response.
std::string error_body(const ApiError& e);

}  // namespace bitnet::server

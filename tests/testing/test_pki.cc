#include "testing/test_pki.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "testing/test_util.h"

namespace cninet::testing {
namespace {

absl::Status Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  CommandResult r = Run(args);
  if (!r.ok()) {
    return absl::InternalError(StrCat(StrJoin(args, " "), " failed (", r.exit_code, "): ", r.err));
  }
  return absl::OkStatus();
}

// A P-256 key and a certificate signing request for `cn` at dir/name{-key.pem,.csr}.
absl::Status KeyAndCsr(const std::string& dir, const std::string& name, const std::string& cn) {
  CNINET_RETURN_IF_ERROR(Openssl(
      {"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       dir + "/" + name + "-key.pem", "-out", dir + "/" + name + ".csr", "-subj", "/CN=" + cn}));
  chmod((dir + "/" + name + "-key.pem").c_str(), 0600);
  return absl::OkStatus();
}

// A CA at dir/name{.pem,-key.pem}.
absl::Status MakeCa(const std::string& dir, const std::string& name, const std::string& cn) {
  CNINET_RETURN_IF_ERROR(
      Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", dir + "/" + name + "-key.pem", "-out", dir + "/" + name + ".pem", "-days",
               "2", "-subj", "/CN=" + cn}));
  chmod((dir + "/" + name + "-key.pem").c_str(), 0600);
  return absl::OkStatus();
}

// Signs dir/name.csr with the CA `ca` (dir/ca{.pem,-key.pem}) and the extensions `ext`.
absl::Status Sign(const std::string& dir, const std::string& name, const std::string& ca,
                  const std::string& ext) {
  const std::string ext_file = dir + "/" + name + ".ext";
  {
    std::ofstream out(ext_file);
    out << ext << "\n";
    if (!out) return absl::InternalError(StrCat("writing ", ext_file));
  }
  return Openssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/" + ca + ".pem",
                  "-CAkey", dir + "/" + ca + "-key.pem", "-set_serial",
                  std::to_string(std::hash<std::string>{}(dir + name) >> 2), "-days", "2", "-out",
                  dir + "/" + name + ".pem", "-extfile", ext_file});
}

absl::Status MakeClient(const std::string& dir, const std::string& name, const std::string& ca) {
  CNINET_RETURN_IF_ERROR(KeyAndCsr(dir, "client-" + name, name));
  return Sign(dir, "client-" + name, ca, "extendedKeyUsage=clientAuth");
}

}  // namespace

CertPair TestPki::Client(const std::string& name) const {
  return {dir + "/client-" + name + ".pem", dir + "/client-" + name + "-key.pem"};
}

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::vector<std::string>& clients) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("creating ", dir, ": ", ec.message()));
  TestPki pki;
  pki.dir = dir;
  CNINET_RETURN_IF_ERROR(MakeCa(dir, "ca", "cninet test CA"));
  CNINET_RETURN_IF_ERROR(MakeCa(dir, "other-ca", "unrelated test CA"));
  CNINET_RETURN_IF_ERROR(KeyAndCsr(dir, "server", "etcd"));
  CNINET_RETURN_IF_ERROR(Sign(dir, "server", "ca",
                              "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                              "extendedKeyUsage=serverAuth,clientAuth"));
  for (const std::string& c : clients) CNINET_RETURN_IF_ERROR(MakeClient(dir, c, "ca"));
  CNINET_RETURN_IF_ERROR(MakeClient(dir, "intruder", "other-ca"));
  pki.ca = dir + "/ca.pem";
  pki.other_ca = dir + "/other-ca.pem";
  pki.server = {dir + "/server.pem", dir + "/server-key.pem"};
  pki.other_client = pki.Client("intruder");
  return pki;
}

}  // namespace cninet::testing

// The state model's key layout, canonical JSON codec and validation.
#include "cninet/agent/state.h"

#include <google/protobuf/util/message_differencer.h>

#include "store_test_support.h"

namespace cninet::agent::testing {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

TEST(KeysTest, LayoutUnderTheV1Root) {
  EXPECT_EQ(keys::Node("n1"), "/cninet/v1/nodes/n1");
  EXPECT_EQ(keys::Service("default", "web"), "/cninet/v1/services/default/web");
  EXPECT_EQ(keys::Endpoints("default", "web"), "/cninet/v1/endpoints/default/web");
  EXPECT_EQ(keys::Pod("kube-system", "dns-1"), "/cninet/v1/pods/kube-system/dns-1");
  EXPECT_EQ(keys::Namespace("prod"), "/cninet/v1/namespaces/prod");
  EXPECT_EQ(keys::NetworkPolicy("prod", "deny"), "/cninet/v1/networkpolicies/prod/deny");
  EXPECT_EQ(keys::Heartbeat("n1"), "/cninet/v1/heartbeats/n1");
  EXPECT_EQ(keys::PodCIDR("10.244.3.0/24"), "/cninet/v1/podcidrs/10.244.3.0-24");
  EXPECT_EQ(keys::PodCIDR("fd00:10:244::/64"), "/cninet/v1/podcidrs/fd00:10:244::-64");
  EXPECT_EQ(keys::ClusterConfig(), "/cninet/v1/config/cluster");
  for (ObjectKind kind : {ObjectKind::kNode, ObjectKind::kService, ObjectKind::kClusterConfig}) {
    EXPECT_EQ(KeyPrefix(kind).substr(0, kKeyRoot.size()), kKeyRoot);
    EXPECT_EQ(KeyPrefix(kind).back(), '/');
  }
}

TEST(KeysTest, NamesAreDns1123) {
  EXPECT_THAT(ValidateName("node-1.example"), IsOk());
  EXPECT_THAT(ValidateName(""), StatusIs(absl::StatusCode::kInvalidArgument, "empty"));
  EXPECT_THAT(ValidateName("Node1"), StatusIs(absl::StatusCode::kInvalidArgument, "lower-case"));
  EXPECT_THAT(ValidateName("a/b"), StatusIs(absl::StatusCode::kInvalidArgument, "lower-case"));
  EXPECT_THAT(ValidateName("-a"), StatusIs(absl::StatusCode::kInvalidArgument, "start and end"));
  EXPECT_THAT(ValidateName(std::string(254, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, "253"));
}

TEST(CodecTest, JsonUsesTheDocumentedFieldNames) {
  v1::Service svc;
  svc.set_namespace_("default");
  svc.set_name("web");
  svc.set_type(v1::Service::NODE_PORT);
  svc.set_cluster_ip("10.96.0.10");
  svc.add_external_ips("192.0.2.7");
  svc.set_session_affinity(v1::Service::CLIENT_IP);
  svc.set_session_affinity_timeout_seconds(600);
  auto* port = svc.add_ports();
  port->set_name("http");
  port->set_protocol(v1::TCP);
  port->set_port(80);
  port->set_node_port(30080);
  auto json = EncodeJson(svc);
  ASSERT_THAT(json, IsOk());
  EXPECT_EQ(*json,
            R"({"namespace":"default","name":"web","type":"NODE_PORT","clusterIP":"10.96.0.10",)"
            R"("ports":[{"name":"http","protocol":"TCP","port":80,"nodePort":30080}],)"
            R"("externalIPs":["192.0.2.7"],"sessionAffinity":"CLIENT_IP",)"
            R"("sessionAffinityTimeoutSeconds":600})");
  v1::Service back;
  ASSERT_THAT(DecodeJson(*json, &back), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(svc, back));
  // The proto field names are accepted too (operators may write either).
  ASSERT_THAT(DecodeJson(R"({"cluster_ip":"10.96.0.1","session_affinity":"CLIENT_IP"})", &back),
              IsOk());
  EXPECT_EQ(back.cluster_ip(), "10.96.0.1");
}

TEST(CodecTest, UnknownFieldsAndBadJsonAreErrors) {
  v1::Node node;
  EXPECT_THAT(DecodeJson(R"({"directRoutng":true})", &node),
              StatusIs(absl::StatusCode::kInvalidArgument, "directRoutng"));
  EXPECT_THAT(DecodeJson("{", &node), StatusIs(absl::StatusCode::kInvalidArgument, "Node"));
  EXPECT_THAT(DecodeJson(R"({"directRouting":"maybe"})", &node),
              StatusIs(absl::StatusCode::kInvalidArgument, "direct_routing"));
  EXPECT_THAT(DecodeJson(R"({"directRouting":1})", &node),
              StatusIs(absl::StatusCode::kInvalidArgument, "direct_routing"));
  // protobuf 3.21's parser accepts quoted booleans ("true", "yes", "1"); documented, not ours.
  ASSERT_THAT(DecodeJson(R"({"directRouting":"yes"})", &node), IsOk());
  EXPECT_TRUE(node.direct_routing());
  EXPECT_THAT(DecodeJson(R"({"addresses":[{"type":"SOMETHING"}]})", &node),
              StatusIs(absl::StatusCode::kInvalidArgument, ""));
}

TEST(DecodeObjectTest, IdentityComesFromTheKey) {
  v1::Node node;
  ASSERT_THAT(DecodeObject(ObjectKind::kNode, keys::Node("n1"),
                           R"({"directRouting":true,"publicIP":"203.0.113.5"})", &node),
              IsOk());
  EXPECT_EQ(node.name(), "n1");
  EXPECT_TRUE(node.direct_routing());
  EXPECT_EQ(node.public_ip(), "203.0.113.5");

  v1::Endpoints eps;
  ASSERT_THAT(DecodeObject(ObjectKind::kEndpoints, keys::Endpoints("prod", "api"),
                           R"({"ports":[{"backends":[{"ip":"10.244.1.5","port":8080}]}]})", &eps),
              IsOk());
  EXPECT_EQ(eps.namespace_(), "prod");
  EXPECT_EQ(eps.name(), "api");
  EXPECT_EQ(eps.ports(0).backends(0).port(), 8080u);

  EXPECT_THAT(DecodeObject(ObjectKind::kNode, keys::Node("n1"), R"({"name":"n2"})", &node),
              StatusIs(absl::StatusCode::kInvalidArgument, "does not match"));
  EXPECT_EQ(node.name(), "");  // Cleared on error.
  EXPECT_THAT(DecodeObject(ObjectKind::kService, "/cninet/v1/services/only-name", "{}", &eps),
              StatusIs(absl::StatusCode::kInternal, ""));  // Wrong message type for the kind.
  v1::Service svc;
  EXPECT_THAT(DecodeObject(ObjectKind::kService, "/cninet/v1/services/only-name", "{}", &svc),
              StatusIs(absl::StatusCode::kInvalidArgument, "<namespace>/<name>"));
  EXPECT_THAT(DecodeObject(ObjectKind::kService, "/cninet/v1/nodes/x/y", "{}", &svc),
              StatusIs(absl::StatusCode::kInvalidArgument, "not under"));

  v1::PodCIDRAllocation alloc;
  ASSERT_THAT(DecodeObject(ObjectKind::kPodCIDRAllocation, keys::PodCIDR("10.244.3.0/24"),
                           R"({"node":"n3"})", &alloc),
              IsOk());
  EXPECT_EQ(alloc.cidr(), "10.244.3.0/24");

  v1::ClusterConfig config;
  ASSERT_THAT(DecodeObject(ObjectKind::kClusterConfig, keys::ClusterConfig(),
                           R"({"clusterCIDR":"10.244.0.0/16","vxlanVNI":42})", &config),
              IsOk());
  EXPECT_EQ(config.vxlan_vni(), 42u);
  EXPECT_THAT(DecodeObject(ObjectKind::kClusterConfig, "/cninet/v1/config/other", "{}", &config),
              StatusIs(absl::StatusCode::kInvalidArgument, "cluster config"));
}

TEST(DecodeObjectTest, DeletesCarryTheIdentityOfTheirKey) {
  v1::Pod pod;
  ASSERT_THAT(IdentityFromKey(ObjectKind::kPod, keys::Pod("ns1", "p1"), &pod), IsOk());
  EXPECT_EQ(pod.namespace_(), "ns1");
  EXPECT_EQ(pod.name(), "p1");
  WatchUpdate update;
  update.events.push_back(Event{EventType::kDelete, KeyValue{keys::Pod("ns1", "p2"), "", 0, 9}});
  update.events.push_back(Event{EventType::kPut, KeyValue{keys::Pod("ns1", "p3"), "[]", 3, 10}});
  auto typed = DecodeUpdate<v1::Pod>(update);
  ASSERT_EQ(typed.events.size(), 1u);
  EXPECT_EQ(typed.events[0].type, EventType::kDelete);
  EXPECT_EQ(typed.events[0].object.value.name(), "p2");
  EXPECT_EQ(typed.events[0].object.mod_revision, 9);
  ASSERT_EQ(typed.errors.size(), 1u);
  EXPECT_EQ(typed.errors[0].key, keys::Pod("ns1", "p3"));
}

TEST(ValidateTest, Node) {
  v1::Node node;
  node.set_name("n1");
  node.add_pod_cidrs("10.244.1.0/24");
  node.add_pod_cidrs("fd00:244:1::/64");
  node.set_vtep_mac("0A:58:0a:f4:01:01");
  auto* addr = node.add_addresses();
  addr->set_type(v1::NodeAddress::INTERNAL_IP);
  addr->set_address("192.168.1.10");
  EXPECT_THAT(Validate(node), IsOk());
  node.add_pod_cidrs("10.244.2.0/24");
  EXPECT_THAT(Validate(node), StatusIs(absl::StatusCode::kInvalidArgument, "one CIDR per"));
  node.mutable_pod_cidrs()->RemoveLast();
  node.set_vtep_mac("0a:58:0a:f4:01");
  EXPECT_THAT(Validate(node), StatusIs(absl::StatusCode::kInvalidArgument, "vtepMAC"));
  node.set_vtep_mac("");
  node.set_public_ip("300.1.1.1");
  EXPECT_THAT(Validate(node), StatusIs(absl::StatusCode::kInvalidArgument, "publicIP"));
  node.set_public_ip("");
  addr->set_address("not-an-ip");
  EXPECT_THAT(Validate(node), StatusIs(absl::StatusCode::kInvalidArgument, "addresses"));
  addr->set_type(v1::NodeAddress::HOSTNAME);
  EXPECT_THAT(Validate(node), IsOk());
}

TEST(ValidateTest, ServiceAndEndpoints) {
  v1::Service svc;
  svc.set_namespace_("default");
  svc.set_name("web");
  svc.set_cluster_ip("10.96.0.10");
  auto* http = svc.add_ports();
  http->set_port(80);
  EXPECT_THAT(Validate(svc), IsOk());
  auto* https = svc.add_ports();
  https->set_port(443);
  EXPECT_THAT(Validate(svc), StatusIs(absl::StatusCode::kInvalidArgument, "needs a name"));
  http->set_name("http");
  https->set_name("https");
  EXPECT_THAT(Validate(svc), IsOk());
  https->set_node_port(30443);
  EXPECT_THAT(Validate(svc), StatusIs(absl::StatusCode::kInvalidArgument, "CLUSTER_IP"));
  svc.set_type(v1::Service::NODE_PORT);
  EXPECT_THAT(Validate(svc), IsOk());
  https->set_port(80);
  EXPECT_THAT(Validate(svc), StatusIs(absl::StatusCode::kInvalidArgument, "duplicate port 80"));
  https->set_protocol(v1::UDP);  // 80/UDP next to 80/TCP is fine.
  EXPECT_THAT(Validate(svc), IsOk());
  svc.set_session_affinity_timeout_seconds(86401);
  EXPECT_THAT(Validate(svc), StatusIs(absl::StatusCode::kInvalidArgument, "86400"));

  v1::Endpoints eps;
  eps.set_namespace_("default");
  eps.set_name("web");
  auto* port = eps.add_ports();
  port->set_port_name("http");
  auto* backend = port->add_backends();
  backend->set_ip("10.244.1.5");
  backend->set_port(8080);
  backend->set_node("n1");
  EXPECT_THAT(Validate(eps), IsOk());
  backend->set_port(0);
  EXPECT_THAT(Validate(eps), StatusIs(absl::StatusCode::kInvalidArgument, "backends.port"));
}

TEST(ValidateTest, NetworkPolicyAndClusterConfig) {
  v1::NetworkPolicy policy;
  policy.set_namespace_("prod");
  policy.set_name("allow-web");
  (*policy.mutable_pod_selector()->mutable_match_labels())["app"] = "web";
  auto* rule = policy.add_ingress();
  auto* peer = rule->add_from();
  peer->mutable_ip_block()->set_cidr("10.0.0.0/8");
  peer->mutable_ip_block()->add_except("10.1.0.0/16");
  auto* port = rule->add_ports();
  port->set_port(8000);
  port->set_end_port(8080);
  EXPECT_THAT(Validate(policy), IsOk());
  peer->mutable_ip_block()->add_except("192.168.0.0/16");
  EXPECT_THAT(Validate(policy), StatusIs(absl::StatusCode::kInvalidArgument, "not inside"));
  peer->mutable_ip_block()->mutable_except()->RemoveLast();
  port->set_end_port(7000);
  EXPECT_THAT(Validate(policy), StatusIs(absl::StatusCode::kInvalidArgument, "endPort"));
  port->set_end_port(0);
  rule->add_from();  // A peer with nothing set.
  EXPECT_THAT(Validate(policy), StatusIs(absl::StatusCode::kInvalidArgument, "a peer needs"));

  v1::ClusterConfig config;
  config.set_cluster_cidr("10.244.0.0/16");
  config.set_service_cidr("10.96.0.0/12");
  ApplyDefaults(&config);
  EXPECT_EQ(config.node_cidr_mask_size(), 24u);
  EXPECT_EQ(config.vxlan_port(), 8472u);
  EXPECT_EQ(config.vxlan_vni(), 1u);
  EXPECT_EQ(config.node_port_range().min(), 30000u);
  EXPECT_EQ(config.node_port_range().max(), 32767u);
  EXPECT_THAT(Validate(config), IsOk());
  config.set_node_cidr_mask_size(8);
  EXPECT_THAT(Validate(config), StatusIs(absl::StatusCode::kInvalidArgument, "nodeCIDRMaskSize"));
  config.set_node_cidr_mask_size(24);
  config.set_service_cidr("10.244.128.0/20");
  EXPECT_THAT(Validate(config), StatusIs(absl::StatusCode::kInvalidArgument, "overlaps"));
  config.set_service_cidr("10.96.0.0/12");
  config.set_vxlan_vni(1 << 24);
  EXPECT_THAT(Validate(config), StatusIs(absl::StatusCode::kInvalidArgument, "vxlanVNI"));
}

TEST(KeyOfTest, BuildsKeysFromIdentityFields) {
  v1::Pod pod;
  pod.set_namespace_("ns1");
  pod.set_name("p1");
  EXPECT_THAT(KeyOf(ObjectKind::kPod, pod), IsOkAndHolds(keys::Pod("ns1", "p1")));
  pod.set_namespace_("");
  EXPECT_THAT(KeyOf(ObjectKind::kPod, pod),
              StatusIs(absl::StatusCode::kInvalidArgument, "namespace"));
  v1::ClusterConfig config;
  EXPECT_THAT(KeyOf(ObjectKind::kClusterConfig, config), IsOkAndHolds(keys::ClusterConfig()));
  v1::PodCIDRAllocation alloc;
  alloc.set_cidr("10.244.7.0/24");
  EXPECT_THAT(KeyOf(ObjectKind::kPodCIDRAllocation, alloc),
              IsOkAndHolds(keys::PodCIDR("10.244.7.0/24")));
  EXPECT_THAT(KeyOf(ObjectKind::kNode, alloc), StatusIs(absl::StatusCode::kInternal, ""));
}

}  // namespace
}  // namespace cninet::agent::testing

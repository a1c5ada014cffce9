// Text rendering of the agent's status report and health, shared by cninet-agent and cninetctl.
#ifndef CNINET_EXAMPLES_AGENT_STATUS_PRINT_H_
#define CNINET_EXAMPLES_AGENT_STATUS_PRINT_H_

#include <ostream>

#include "cninet/agent/api.pb.h"

namespace cninet::agent_tool {

// Nodes, services, endpoints, counters and problems as aligned tables.
void PrintStatus(const agent::api::AgentStatus& s, std::ostream& out);

// "ready, healthy" or the reason.
void PrintHealth(const agent::api::HealthReply& h, std::ostream& out);

}  // namespace cninet::agent_tool

#endif  // CNINET_EXAMPLES_AGENT_STATUS_PRINT_H_

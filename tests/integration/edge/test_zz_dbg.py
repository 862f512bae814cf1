import time
from tests.integration.edge.test_agent import Proxy, make_agent, MessageType, wait_until, broker, host, agents  # noqa

def test_dbg(tmp_path, broker, host, agents):
    host.online()
    proxy = Proxy(broker.mqtt_port)
    try:
        agents.append(agent := make_agent(tmp_path, proxy.port))
        wait_until(lambda: host.messages(MessageType.NBIRTH))
        proxy.cut()
        time.sleep(4)
        for r in host.received:
            print(r.at, r.kind, [ (m.name, m.value) for m in r.payload.metrics if m.name == "bdSeq"])
    finally:
        proxy.close()

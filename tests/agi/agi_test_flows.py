"""A flow registered on import, for the process-AGI test (HOTLINE_FLOW_MODULES=agi_test_flows)."""

from agi.process_agi import register_flow
from agi.protocol import HotlineAGI
from agi.request import AgiRequest


def echo_flow(agi: HotlineAGI, request: AgiRequest) -> None:
    agi.answer()
    digits = agi.get_data("menu", 3000, 2)
    agi.set_variable("ECHO", f"{request.script}:{digits.digits}:{','.join(request.args)}")


register_flow("echo-test", echo_flow)

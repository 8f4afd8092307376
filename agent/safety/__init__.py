"""The station's physical safety I/O on GPIO: e-stop, door interlock, buttons, stack light."""

from agent.safety.config import GpioConfig, InputPin, OutputPin, SafetyInputPin
from agent.safety.errors import SafetyIoError
from agent.safety.light import LightState, StackLight
from agent.safety.panel import SafetyInput, SafetyListener, SafetyPanel
from agent.safety.pins import hardware_pin_factory

__all__ = [
    "GpioConfig",
    "InputPin",
    "LightState",
    "OutputPin",
    "SafetyInput",
    "SafetyInputPin",
    "SafetyIoError",
    "SafetyListener",
    "SafetyPanel",
    "StackLight",
    "hardware_pin_factory",
]

"""The benchmarks' header names the machine kind, not only the model name a VM reports."""
from roof import cpu_model

#: The start of /proc/cpuinfo on a 2-vCPU Zen 4 virtual machine, two CPUs.
ZEN4_VM = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: another CPU
"""


def test_cpu_model_gives_the_first_cpus_family_and_model():
    assert cpu_model(ZEN4_VM) == "AMD EPYC (family 25 model 17)"


def test_cpu_model_without_family_numbers_is_the_model_name():
    assert cpu_model("model name\t: Some ARM core\n") == "Some ARM core"

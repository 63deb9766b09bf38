# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every module of hvjob.hyperv."""

    DOCUMENTATION = r"""
options:
  hostname:
    description:
      - The Hyper-V node to talk to, as V(name), V(name:port) or a full V(https://name:5986/wsman) URL.
      - Defaults to the host's C(ansible_host), else its C(inventory_hostname).
    type: str
  port:
    description:
      - The WinRM port. Defaults to the host's C(ansible_port), else 5986 for V(https) and 5985 for V(http).
    type: int
  username:
    description:
      - The account, as V(DOMAIN\\user) or V(user@REALM). Defaults to the host's C(ansible_user),
        else the environment variable E(HVJOB_USERNAME).
      - Not needed for O(transport=kerberos) with a ticket cache, nor for O(transport=certificate).
    type: str
  password:
    description:
      - The password. Defaults to the host's C(ansible_password) (vault it), else the environment
        variable E(HVJOB_PASSWORD).
    type: str
  transport:
    description:
      - How to authenticate. Defaults to the host's C(ansible_winrm_transport) (its first entry), else V(ntlm).
      - V(kerberos) uses the controller's ticket cache (C(kinit)), or O(username) and O(password) when they are given
        (no cache needed), and needs C(hvjob[kerberos]).
      - V(credssp) needs C(hvjob[credssp]) and delegates the credentials to the node.
      - V(basic) is refused over plain HTTP unless O(allow_unencrypted=true).
    type: str
    choices: [ntlm, kerberos, credssp, basic, certificate]
    default: ntlm
  scheme:
    description:
      - V(https) validates the node's certificate; V(http) is only allowed with message encryption
        (NTLM, Kerberos, CredSSP).
      - Defaults to the host's C(ansible_winrm_scheme), else V(https).
    type: str
    choices: [https, http]
    default: https
  validate_certs:
    description:
      - Validate the node's TLS certificate. V(false) is insecure and logs a warning.
      - Defaults to false when the host's C(ansible_winrm_server_cert_validation) is V(ignore), else true.
    type: bool
    default: true
  ca_trust_path:
    description:
      - A CA bundle (PEM) to validate the node's certificate with, instead of the system's.
        Defaults to the host's C(ansible_winrm_ca_trust_path).
    type: path
  message_encryption:
    description:
      - WS-Man message encryption; V(auto) encrypts over V(http) and not over V(https).
        Defaults to the host's C(ansible_winrm_message_encryption), else V(auto).
    type: str
    choices: [auto, always, never]
    default: auto
  allow_unencrypted:
    description:
      - Allow plain HTTP without message encryption (for example Basic over HTTP). Insecure; logs a warning.
    type: bool
    default: false
  cert_pem:
    description:
      - Client certificate (PEM) for O(transport=certificate). Defaults to the host's C(ansible_winrm_cert_pem).
    type: path
  cert_key_pem:
    description:
      - Key (PEM) of O(cert_pem). Defaults to the host's C(ansible_winrm_cert_key_pem).
    type: path
  spn_hostname:
    description:
      - Kerberos service principal host name, when the node is reached by another name or address.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the TCP and TLS connection.
    type: int
    default: 10
  operation_timeout:
    description:
      - The WS-Man OperationTimeout in seconds; the HTTP read timeout is 10 seconds longer,
        so the node answers (or faults) before the module gives up.
    type: int
    default: 20
  namespace:
    description:
      - The WMI namespace of the job class.
    type: str
    default: root/HyperVCluster/v2
  job_class:
    description:
      - The job class, any C(CIM_ConcreteJob) subclass (C(Msvm_ConcreteJob), C(Msvm_MigrationJob), ...).
    type: str
    default: Msvm_CollectionReferencePointExportJob
requirements:
  - The hvjob Python library (C(pip install hvjob)) in the Python that runs C(ansible-playbook).
notes:
  - The modules talk WS-Management to the node from the controller, in the controller's own process
    (their action plugins do the work), never on the managed host; no C(delegate_to) is needed, and
    the host needs no Python. C(delegate_to) localhost, as in older playbooks, still works.
  - Options not given default to the host's WinRM connection variables, as listed for each option,
    so an inventory from the P(hvjob.hyperv.cluster#inventory) plugin needs no further settings but the password.
  - Set shared options once with C(module_defaults) and the action group C(group/hvjob.hyperv.hyperv).
"""

    # The same connection options for the inventory plugin hvjob.hyperv.cluster (no hostname: the seeds).
    INVENTORY = r"""
options:
  port:
    description:
      - The WinRM port of every node that O(resolve) does not map. Defaults to 5986 for V(https) and 5985 for V(http).
    type: int
  username:
    description:
      - The account that discovers the nodes, as V(DOMAIN\\user) or V(user@REALM); also each node's C(ansible_user).
      - Not needed for O(transport=kerberos) with a ticket cache, nor for O(transport=certificate).
    type: str
    env:
      - name: HVJOB_USERNAME
  password:
    description:
      - The password, ideally vaulted in the inventory file (C(!vault)) or given in the environment.
      - Never becomes a host variable; give the modules theirs (C(module_defaults), C(HVJOB_PASSWORD)).
    type: str
    env:
      - name: HVJOB_PASSWORD
  transport:
    description:
      - How to authenticate; also each node's C(ansible_winrm_transport).
      - V(kerberos) uses the controller's ticket cache, or the user and password when given, and needs
        C(hvjob[kerberos]); V(credssp) needs C(hvjob[credssp]).
    type: str
    choices: [ntlm, kerberos, credssp, basic, certificate]
    default: ntlm
  scheme:
    description:
      - V(https) validates the node's certificate; V(http) is only allowed with message encryption.
      - Also each node's C(ansible_winrm_scheme).
    type: str
    choices: [https, http]
    default: https
  validate_certs:
    description:
      - Validate the nodes' TLS certificates. V(false) is insecure, logs a warning and sets
        C(ansible_winrm_server_cert_validation=ignore) on each node.
    type: bool
    default: true
  ca_trust_path:
    description:
      - A CA bundle (PEM) to validate the nodes' certificates with; also each node's C(ansible_winrm_ca_trust_path).
    type: path
  message_encryption:
    description:
      - WS-Man message encryption; V(auto) encrypts over V(http) and not over V(https).
    type: str
    choices: [auto, always, never]
    default: auto
  allow_unencrypted:
    description:
      - Allow plain HTTP without message encryption. Insecure; logs a warning.
    type: bool
    default: false
  cert_pem:
    description:
      - Client certificate (PEM) for O(transport=certificate).
    type: path
  cert_key_pem:
    description:
      - Key (PEM) of O(cert_pem).
    type: path
  spn_hostname:
    description:
      - Kerberos service principal host name, when the seed is reached by another name or address.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the TCP and TLS connection.
    type: int
    default: 10
  operation_timeout:
    description:
      - The WS-Man OperationTimeout in seconds.
    type: int
    default: 20
requirements:
  - The hvjob Python library (C(pip install hvjob)) in the Python that runs C(ansible-inventory) or C(ansible-playbook).
"""
